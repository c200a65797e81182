"""moto's S3 and STS on 127.0.0.1 over HTTPS, for Updraft's remote-log tests.

Usage: serve.py FOLDER PORT. Writes a CA made for this run (FOLDER/ca.pem) and a server
certificate it signed for 127.0.0.1 and localhost, then serves moto (the same WSGI app as
`moto_server`) with that certificate until killed. Every request is logged to standard error.

One adaptation of moto's routing: moto recognises an unsigned STS request by its form body,
while object_store sends the parameters of AssumeRoleWithWebIdentity in the query string (which
AWS accepts as well). Such a request's query string is moved into a form body before moto sees
it; nothing else is changed.
"""

import datetime
import io
import ipaddress
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def write_certificates(folder):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Updraft remote-logs test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(f"{folder}/ca.pem", "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(f"{folder}/server.pem", "wb") as f:
        f.write(server.public_bytes(pem))
    with open(f"{folder}/server.key", "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


moto = DomainDispatcherApplication(create_backend_app)


def app(environ, start_response):
    query = environ.get("QUERY_STRING", "")
    if "Action=AssumeRoleWithWebIdentity" in query and not environ.get("CONTENT_LENGTH"):
        body = query.encode()
        environ["QUERY_STRING"] = ""
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        print("sts: AssumeRoleWithWebIdentity", file=sys.stderr, flush=True)
    return moto(environ, start_response)


if __name__ == "__main__":
    folder, port = sys.argv[1], int(sys.argv[2])
    write_certificates(folder)
    run_simple(
        "127.0.0.1",
        port,
        app,
        threaded=True,
        ssl_context=(f"{folder}/server.pem", f"{folder}/server.key"),
        request_handler=MotoRequestHandler,
    )
