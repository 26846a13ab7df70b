"""The VEN's registration at the VTN: its VEN object found by venName or created
(`VEN_VEN_REQUEST`), then the site as its resource with its flexible capacity as attributes
(3.1.0 has no /vens/{id}/resources: /resources with venID)."""

from __future__ import annotations

from typing import Any

from vpp.grid.oadr3 import wire
from vpp.grid.oadr3.client import VtnClient
from vpp.grid.oadr3.read import list_of, one, parsed
from vpp.site import Site


def site_attributes(site: Site) -> list[dict[str, Any]]:
    """The site's flexible capacity as resource attributes (ven-resource-attributes): its
    import and export limits and, as a private attribute, the kW its batteries can
    discharge (their power setpoint limits)."""
    limits = site.config.limits
    attrs = [wire.values_map("DESCRIPTION", [site.config.name or site.id])]
    if limits.import_kw is not None:
        attrs.append(wire.values_map("MAX_POWER_CONSUMPTION", [float(limits.import_kw)]))
    if limits.export_kw is not None:
        attrs.append(wire.values_map("MAX_POWER_EXPORT", [float(limits.export_kw)]))
    discharge = sum(
        max(0.0, -d.config.limits["power_setpoint_kw"][0])
        for d in site.devices
        if "power_setpoint_kw" in d.config.limits
    )
    attrs.append(wire.values_map("VPP_DISCHARGE_CAPACITY_KW", [round(discharge, 3)]))
    return attrs


async def register(client: VtnClient, ven_name: str, site: Site) -> tuple[str, str]:
    """(venID, resourceID) of this VEN and its site resource, created where missing."""
    found = await client.request("GET", "/vens", params={"venName": ven_name})
    vens = parsed(list_of(found, "/vens"), wire.Ven, "GET /vens")
    ven_id = next((v.id for v in vens if v.venName == ven_name), None)
    if ven_id is None:
        created = await client.request("POST", "/vens", body=wire.ven_request(ven_name, []))
        ven_id = one(created, wire.Ven, "POST /vens").id
    params = {"venID": ven_id, "resourceName": site.id}
    found = await client.request("GET", "/resources", params=params)
    resources = parsed(list_of(found, "/resources"), wire.Resource, "GET /resources")
    resource_id = next((r.id for r in resources if r.resourceName == site.id), None)
    if resource_id is None:
        body = wire.resource_request(site.id, ven_id, site_attributes(site))
        created = await client.request("POST", "/resources", body=body)
        resource_id = one(created, wire.Resource, "POST /resources").id
    return ven_id, resource_id
