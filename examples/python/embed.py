"""Embed connvault in your product: the three steps, runnable.

    CONNVAULT_HTTP=http://127.0.0.1:8080 examples/python/run.sh localhost:50051 embed.py

1. Your backend creates a form link (FormLinkService.CreateFormLink).
2. You send your user to `link.url`; they type their own credentials into
   connvault's page and come back to your `redirect_url`. (Here a tiny
   scripted "user" fills the form over plain HTTP, as a browser would.)
3. Your redirect handler verifies the signature with the key published at
   `/v1/forms/keys` before trusting anything in the query string.

Uses the `testdb` fixture data source of connvault's own tests. Any
mismatch exits non-zero.
"""

import base64
import http.cookiejar
import json
import os
import re
import sys
import urllib.parse
import urllib.request
import uuid

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import field_mask_pb2

from connvault.v1 import (
    connection_service_pb2 as conn_pb,
    connection_service_pb2_grpc as conn_grpc,
    form_link_service_pb2 as link_pb,
    form_link_service_pb2_grpc as link_grpc,
    tenant_service_pb2 as tenant_pb,
    tenant_service_pb2_grpc as tenant_grpc,
)

TIMEOUT = 30
ORIGIN = "https://app.example.com"  # your product's origin
REDIRECT = ORIGIN + "/integrations/connected"


class BearerToken(grpc.UnaryUnaryClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token):
        self.metadata = (("authorization", f"Bearer {token}"),)

    def intercept_unary_unary(self, continuation, details, request):
        details = details._replace(metadata=tuple(details.metadata or ()) + self.metadata)
        return continuation(details, request)


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---- step 3: what your redirect handler does ---------------------------------

def verify_redirect(http_base, location, expected_state):
    """Returns (connection name, outcome) once the signature verifies."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query, keep_blank_values=True))
    with urllib.request.urlopen(f"{http_base}/v1/forms/keys", timeout=TIMEOUT) as answer:
        key = json.load(answer)["keys"][0]
    public = Ed25519PublicKey.from_public_bytes(b64url(key["x"]))
    # The signed text: the redirect URL as you gave it, then the link, the
    # connection, the outcome and your state, one per line.
    message = "\n".join([
        "connvault-form-redirect-v1", REDIRECT, query["link"], query["connection"],
        query["outcome"], query["state"].replace("\n", "%0A"),
    ]).encode()
    public.verify(b64url(query["signature"]), message)  # raises if forged
    if query["state"] != expected_state:
        raise SystemExit("FAIL: the state is not the one this user's session holds")
    return query["connection"], query["outcome"]


# ---- step 2, scripted: what the user does in a browser -------------------------

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fill_in_form(url):
    """Opens the link and saves a connection; returns the redirect's Location."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    with opener.open(url, timeout=TIMEOUT) as page:
        html = page.read().decode()
        cookie = page.headers["Set-Cookie"].split(";")[0]
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    form = urllib.parse.urlencode({
        "csrf": csrf, "action": "save", "display_name": "Their warehouse",
        "f.host": "db.example.com", "f.user": "analyst", "f.password": "typed-by-the-user",
    }).encode()
    base = url.split("/forms/")[0]
    request = urllib.request.Request(f"{base}/forms/session", data=form, headers={"Cookie": cookie})
    try:
        opener.open(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as answer:
        if answer.code == 303:
            return answer.headers["Location"]
        raise SystemExit(f"FAIL: the form answered {answer.code}")
    raise SystemExit("FAIL: the form did not redirect")


def main(argv):
    address, http_base = argv[1], os.environ["CONNVAULT_HTTP"]
    token = os.environ.get("CONNVAULT_TOKEN")
    with grpc.insecure_channel(address) as plain:
        channel = grpc.intercept_channel(plain, BearerToken(token)) if token else plain
        tenants = tenant_grpc.TenantServiceStub(channel)
        links = link_grpc.FormLinkServiceStub(channel)
        connections = conn_grpc.ConnectionServiceStub(channel)

        # Once per customer: a tenant whose forms may send users back to you.
        tenant_id = f"embed-{uuid.uuid4().hex[:8]}"
        tenants.CreateTenant(tenant_pb.CreateTenantRequest(tenant_id=tenant_id), timeout=TIMEOUT)
        tenants.UpdateTenant(tenant_pb.UpdateTenantRequest(
            tenant=tenant_pb.Tenant(name=f"tenants/{tenant_id}", forms=tenant_pb.FormSettings(
                allowed_redirect_origins=[ORIGIN], allowed_data_sources=["testdb"],
                branding_display_name="Your product")),
            update_mask=field_mask_pb2.FieldMask(paths=["forms"])), timeout=TIMEOUT)

        # Step 1: your backend asks for a link (keep `state` in the user's session).
        state = uuid.uuid4().hex
        link = links.CreateFormLink(link_pb.CreateFormLinkRequest(
            parent=f"tenants/{tenant_id}", redirect_url=REDIRECT, state=state,
            create=link_pb.CreateFlow(data_source="testdb", editable_name=True)), timeout=TIMEOUT)

        # Step 2: send the user to link.url (scripted here).
        location = fill_in_form(link.url)

        # Step 3: verify the redirect, then use the connection.
        name, outcome = verify_redirect(http_base, location, state)
        if outcome != "created":
            raise SystemExit(f"FAIL: outcome {outcome}")
        saved = connections.GetConnection(conn_pb.GetConnectionRequest(name=name), timeout=TIMEOUT)
        if saved.display_name != "Their warehouse" or "password" not in saved.secret_fields:
            raise SystemExit(f"FAIL: unexpected connection {saved}")
        # A forged redirect does not verify.
        try:
            verify_redirect(http_base, location.replace("outcome=created", "outcome=updated"), state)
        except Exception:  # cryptography's InvalidSignature
            pass
        else:
            raise SystemExit("FAIL: a forged redirect verified")
    print(f"OK: link created, form saved, redirect verified, {name} exists")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
