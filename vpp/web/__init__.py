"""The status page, JSON API and metrics of a site (read from a vpp.view.SiteView)."""
