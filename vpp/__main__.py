from vpp.cli import app

app(prog_name="vpp")
