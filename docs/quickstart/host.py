"""Serves ./www over HTTPS on https://localhost:8443 with the quickstart certificate."""
import functools
import http.server
import os
import ssl

os.chdir(os.path.dirname(os.path.abspath(__file__)))
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="www")
server = http.server.ThreadingHTTPServer(("127.0.0.1", 8443), handler)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain("localhost.pem", "localhost.key")
server.socket = tls.wrap_socket(server.socket, server_side=True)
print("serving https://localhost:8443/client.json", flush=True)
server.serve_forever()
