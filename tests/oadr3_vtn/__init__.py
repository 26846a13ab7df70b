"""A spec-validated test VTN for OpenADR 3.1.0, proved with third-party clients (toadr3,
openadr3) and schemathesis: in memory, on a loopback port from the OS."""
