"""TLS settings and files: which go together, what a bad file says, and real handshakes on this
machine's loopback between a GrpcServer and the channels and clients ragline builds."""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ragline.cli.client_commands import tls_options
from ragline.cli.main import main
from ragline.config import Settings
from ragline.errors import ConfigurationError
from ragline.grpc_server import GrpcServer, channel
from ragline.grpc_status import error_from_rpc
from ragline.tls import MUTUAL_TLS, PLAINTEXT, TLS, channel_credentials, server_security
from ragline_client import RaglineClient, RaglineClientError, UnavailableError
from ragline_client._errors import from_rpc_error
from tests.client_flavours import FLAVOURS, connected
from tests.tls_certs import CertificateAuthority

pytestmark = pytest.mark.unit


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "ca")


@pytest.fixture
def other_ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "other", "another CA")


def server_settings(ca: CertificateAuthority, *, mutual: bool = False) -> Settings:
    server = ca.server()
    return Settings(
        tls_cert_file=str(server.cert),
        tls_key_file=str(server.key),
        tls_client_ca_file=str(ca.cert) if mutual else "",
    )


# --- which settings go together ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RAGLINE_TLS_CERT_FILE": "c.pem"}, "RAGLINE_TLS_KEY_FILE"),
        ({"RAGLINE_TLS_KEY_FILE": "k.pem"}, "RAGLINE_TLS_CERT_FILE"),
        ({"RAGLINE_TLS_CLIENT_CA_FILE": "ca.pem"}, "RAGLINE_TLS_CERT_FILE"),
        (
            {"RAGLINE_TLS_CA_FILE": "ca.pem", "RAGLINE_TLS_CLIENT_CERT_FILE": "c.pem"},
            "RAGLINE_TLS_CLIENT_KEY_FILE",
        ),
        (
            {"RAGLINE_TLS_CLIENT_CERT_FILE": "c.pem", "RAGLINE_TLS_CLIENT_KEY_FILE": "k.pem"},
            "RAGLINE_TLS_CA_FILE",
        ),
    ],
)
def test_tls_settings_that_do_not_go_together_are_refused(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_env(env)


def test_no_tls_settings_is_plaintext_both_ways() -> None:
    settings = Settings.from_env({})
    assert server_security(settings).credentials is None
    assert server_security(settings).mode == PLAINTEXT
    assert channel_credentials(settings) is None


def test_cert_and_key_serve_tls_and_a_client_ca_mutual_tls(ca: CertificateAuthority) -> None:
    assert server_security(server_settings(ca)).mode == TLS
    assert server_security(server_settings(ca, mutual=True)).mode == MUTUAL_TLS


# --- bad files --------------------------------------------------------------------------------


def test_a_missing_file_names_the_setting_and_the_path(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "server.pem"
    settings = server_settings(ca).replace(tls_cert_file=str(missing))
    with pytest.raises(ConfigurationError) as caught:
        server_security(settings)
    assert "RAGLINE_TLS_CERT_FILE" in str(caught.value)
    assert str(missing) in str(caught.value)
    assert "does not exist" in str(caught.value)


def test_a_folder_and_a_non_pem_file_are_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"RAGLINE_TLS_CLIENT_CA_FILE.*is a folder"):
        server_security(server_settings(ca, mutual=True).replace(tls_client_ca_file=str(tmp_path)))
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"\x30\x82\x01\x0a not a PEM file")
    with pytest.raises(ConfigurationError, match=r"RAGLINE_TLS_CA_FILE.*no readable PEM"):
        channel_credentials(Settings(tls_ca_file=str(junk)))
    with pytest.raises(ConfigurationError, match=r"RAGLINE_TLS_CERT_FILE.*no PEM certificate"):
        server_security(server_settings(ca).replace(tls_cert_file=str(junk)))
    with pytest.raises(ConfigurationError, match=r"RAGLINE_TLS_KEY_FILE.*no PEM private key"):
        server_security(server_settings(ca).replace(tls_key_file=str(junk)))


def test_a_key_of_another_certificate_is_refused_without_showing_it(
    ca: CertificateAuthority,
) -> None:
    other = ca.server("other-server")
    settings = server_settings(ca).replace(tls_key_file=str(other.key))
    with pytest.raises(ConfigurationError, match="is not the private key of the certificate") as e:
        server_security(settings)
    assert "PRIVATE KEY" not in str(e.value) and other.key.read_text()[40:80] not in str(e.value)


def test_an_encrypted_key_is_refused_with_what_to_do(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    settings = server_settings(ca)
    key = serialization.load_pem_private_key(Path(settings.tls_key_file).read_bytes(), None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ConfigurationError, match=r"encrypted private key.*unencrypted"):
        server_security(settings.replace(tls_key_file=str(encrypted)))


# --- real handshakes: GrpcServer and ragline's own channels -----------------------------------


async def health(address: str, credentials: grpc.ChannelCredentials | None) -> str:
    """The health status through ragline's service-to-service channel, or the failure's code."""
    async with channel(address, credentials) as ch:
        try:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


@pytest.fixture
async def tls_server(ca: CertificateAuthority) -> AsyncIterator[GrpcServer]:
    server = GrpcServer("127.0.0.1:0", [], "test", server_security(server_settings(ca)))
    await server.start()
    await server.set_serving(True)
    yield server
    await server.stop(0)


@pytest.fixture
async def mtls_server(ca: CertificateAuthority) -> AsyncIterator[GrpcServer]:
    security = server_security(server_settings(ca, mutual=True))
    server = GrpcServer("127.0.0.1:0", [], "test", security)
    await server.start()
    await server.set_serving(True)
    yield server
    await server.stop(0)


def client_settings(
    ca: CertificateAuthority, signer: CertificateAuthority | None = None
) -> Settings:
    identity = (signer or ca).client()
    return Settings(
        tls_ca_file=str(ca.cert),
        tls_client_cert_file=str(identity.cert),
        tls_client_key_file=str(identity.key),
    )


async def test_a_tls_port_answers_tls_with_the_right_ca_and_nothing_else(
    tls_server: GrpcServer, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    address = f"127.0.0.1:{tls_server.port}"
    assert await health(address, channel_credentials(Settings(tls_ca_file=str(ca.cert)))) == (
        "SERVING"
    )
    assert await health(address, None) == "UNAVAILABLE"
    wrong = channel_credentials(Settings(tls_ca_file=str(other_ca.cert)))
    assert await health(address, wrong) == "UNAVAILABLE"


async def test_mutual_tls_wants_a_client_certificate_its_ca_signed(
    mtls_server: GrpcServer, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    address = f"127.0.0.1:{mtls_server.port}"
    assert await health(address, channel_credentials(client_settings(ca))) == "SERVING"
    no_cert = channel_credentials(Settings(tls_ca_file=str(ca.cert)))
    assert await health(address, no_cert) == "UNAVAILABLE"
    foreign = channel_credentials(client_settings(ca, signer=other_ca))
    assert await health(address, foreign) == "UNAVAILABLE"


# --- the Python client: its files and what a failed handshake tells a person ------------------


async def client_error(flavour: str, address: str, **tls: str | Path) -> str:
    """The message of the client's failure calling GetJob, or UNIMPLEMENTED's when the
    handshake succeeded (the test servers have no IngestService)."""
    async with connected(flavour, address, timeout=10, **tls) as client:
        try:
            await client.get_job("j")
        except UnavailableError as exc:
            assert not exc.retryable, exc  # the TLS settings are wrong: no retry can fix them
            return str(exc)
        except RaglineClientError as exc:  # the handshake worked; the call was refused
            return f"handshake ok: {exc.code}"
    raise AssertionError("GetJob answered a server that has no IngestService")


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_client_messages_say_what_to_check(
    flavour: str,
    tls_server: GrpcServer,
    mtls_server: GrpcServer,
    ca: CertificateAuthority,
    other_ca: CertificateAuthority,
) -> None:
    tls_at, mtls_at = f"127.0.0.1:{tls_server.port}", f"127.0.0.1:{mtls_server.port}"
    me, stranger = ca.client(), other_ca.client("stranger")

    async def run(address: str, **tls: str | Path) -> str:
        return await client_error(flavour, address, **tls)

    said = await run(tls_at, ca_file=ca.cert)
    assert said == "handshake ok: UNIMPLEMENTED"
    said = await run(tls_at)
    assert "closed the connection" in said and "--ca" in said
    said = await run(tls_at, ca_file=other_ca.cert)
    assert "not signed by the CA you gave" in said, said
    said = await run(f"localhost:{tls_server.port}", ca_file=ca.cert)
    assert said == "handshake ok: UNIMPLEMENTED"  # the certificate names localhost too

    said = await run(mtls_at, ca_file=ca.cert)
    assert "requires mutual TLS" in said and "--cert" in said, said
    said = await run(mtls_at, ca_file=ca.cert, cert_file=stranger.cert, key_file=stranger.key)
    assert "requires mutual TLS" in said, said
    said = await run(mtls_at, ca_file=ca.cert, cert_file=me.cert, key_file=me.key)
    assert said == "handshake ok: UNIMPLEMENTED"


async def test_a_tls_client_of_a_plaintext_port_is_told_so(ca: CertificateAuthority) -> None:
    server = GrpcServer("127.0.0.1:0", [], "test")
    await server.start()
    try:
        said = await client_error("sync", f"127.0.0.1:{server.port}", ca_file=ca.cert)
    finally:
        await server.stop(0)
    assert "does not speak TLS" in said, said


async def test_a_certificate_for_another_name_is_told_so(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    elsewhere = ca.server("elsewhere", names=("gateway.example.com",))
    settings = Settings(tls_cert_file=str(elsewhere.cert), tls_key_file=str(elsewhere.key))
    server = GrpcServer("127.0.0.1:0", [], "test", server_security(settings))
    await server.start()
    try:
        said = await client_error("sync", f"127.0.0.1:{server.port}", ca_file=ca.cert)
    finally:
        await server.stop(0)
    assert "does not name 127.0.0.1" in said, said


def test_client_files_are_checked_when_the_client_is_made(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    me = ca.client()
    with pytest.raises(FileNotFoundError):
        RaglineClient(ca_file=tmp_path / "missing.pem")
    with pytest.raises(ValueError, match=r"ca_file .* holds no PEM certificate"):
        RaglineClient(ca_file=me.key)
    with pytest.raises(ValueError, match="cert_file and key_file go together"):
        RaglineClient(ca_file=ca.cert, cert_file=me.cert)
    with pytest.raises(ValueError, match="not both"):
        RaglineClient(ca_file=ca.cert, credentials=grpc.ssl_channel_credentials())


# --- the CLI's flags --------------------------------------------------------------------------


def test_cli_tls_flags_default_to_their_variables_and_name_the_source(
    ca: CertificateAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in (
        "RAGLINE_TLS_CA_FILE",
        "RAGLINE_TLS_CLIENT_CERT_FILE",
        "RAGLINE_TLS_CLIENT_KEY_FILE",
    ):
        monkeypatch.delenv(variable, raising=False)
    none = argparse.Namespace(ca=None, cert=None, key=None)
    assert tls_options(none) == {}
    monkeypatch.setenv("RAGLINE_TLS_CA_FILE", str(ca.cert))
    assert isinstance(tls_options(none)["credentials"], grpc.ChannelCredentials)

    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError, match=re.escape(f"--ca names {missing}")):
        tls_options(argparse.Namespace(ca=missing, cert=None, key=None))
    monkeypatch.setenv("RAGLINE_TLS_CA_FILE", missing)
    with pytest.raises(ConfigurationError, match=re.escape(f"RAGLINE_TLS_CA_FILE names {missing}")):
        tls_options(none)
    with pytest.raises(ConfigurationError, match="--cert and RAGLINE_TLS_CLIENT_KEY_FILE go"):
        tls_options(argparse.Namespace(ca=str(ca.cert), cert=str(ca.client().cert), key=None))


def test_cli_with_a_bad_tls_file_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "ca.pem"
    assert main(["search", "anything", "--ca", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ragline search: --ca names ") and str(missing) in err
    assert "Traceback" not in err


class FakeRpcError(grpc.RpcError):
    """A failed call as grpc raises it: a code, details and (no) trailing metadata."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__()
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[()]:
        return ()


def test_the_gateways_words_about_its_own_calls_are_not_taken_for_the_clients() -> None:
    """The gateway quotes gRPC's text about its failed call to the embedder; the client must not
    read it as its own connection failing (no 'cannot reach the gateway', no 'your CA')."""
    core = (
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50053: Tls "
        "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: CERTIFICATE_VERIFY_FAILED"
    )
    gateway_said = str(
        error_from_rpc(FakeRpcError(grpc.StatusCode.UNAVAILABLE, core), "embedder", "e:50053")
    )
    assert "check RAGLINE_TLS_CA_FILE here" in gateway_said
    said = str(
        from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, gateway_said), "g:1", tls=True)
    )
    assert said.startswith("the ragline gateway at g:1 is unavailable: the embedder at e:50053")
    assert "the CA you gave" not in said and "cannot reach" not in said
    assert "not signed by the CA you gave" in str(
        from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, core), "g:1", tls=True)
    )
