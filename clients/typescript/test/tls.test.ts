// The TLS options against a local grpc-js server speaking TLS, with certificates that
// tests/e2e/test_typescript_client.py makes (RAGLINE_TEST_TLS_DIR): ca.pem signs server.pem and
// client.pem, and wrong-name.pem for a host other than this one; other-ca.pem signs
// other-client.pem.

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  Server,
  ServerCredentials,
  type sendUnaryData,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import {
  IngestServiceService,
  type GetJobRequest,
  type GetJobResponse,
} from "../src/gen/ragline/v1/ingest_service.js";
import { JobState } from "../src/gen/ragline/v1/job.js";
import { RaglineClient, UnavailableError, type ClientOptions, type Job } from "../src/index.js";

const DIR = process.env.RAGLINE_TEST_TLS_DIR ?? "";
const pem = (name: string): Buffer => readFileSync(join(DIR, name));

async function serve(credentials: ServerCredentials): Promise<{ server: Server; address: string }> {
  const server = new Server();
  const getJob = (
    call: ServerUnaryCall<GetJobRequest, GetJobResponse>,
    callback: sendUnaryData<GetJobResponse>,
  ): void => {
    callback(null, {
      job: {
        jobId: call.request.jobId,
        documentId: "doc",
        documentVersion: 1,
        state: JobState.JOB_STATE_COMPLETED,
        progress: undefined,
        lastError: "",
        lastErrorStage: 0,
        attempts: 1,
        requestId: "",
        createTime: undefined,
        updateTime: undefined,
        finishTime: undefined,
        stuck: false,
      },
    });
  };
  server.addService(IngestServiceService, { getJob } as unknown as UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", credentials, (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  return { server, address: `127.0.0.1:${port}` };
}

describe("TLS and mutual TLS against a local server", () => {
  let tls: { server: Server; address: string };
  let mutual: { server: Server; address: string };
  let plain: { server: Server; address: string };
  let misnamed: { server: Server; address: string };
  const clients: RaglineClient[] = [];
  const call = (address: string, options: ClientOptions): Promise<unknown> => {
    // Its own subchannel pool: grpc-js would otherwise share one connection (and its last error)
    // between clients with equal credentials.
    const client = new RaglineClient(address, {
      timeoutMs: 5000,
      retry: false,
      channelOptions: { "grpc.use_local_subchannel_pool": 1 },
      ...options,
    });
    clients.push(client);
    return client.getJob("job-1");
  };

  before(async () => {
    assert.ok(
      DIR,
      "set RAGLINE_TEST_TLS_DIR to a folder of test certificates (tests/e2e/test_typescript_client.py makes one)",
    );
    const identity = [{ private_key: pem("server-key.pem"), cert_chain: pem("server.pem") }];
    tls = await serve(ServerCredentials.createSsl(null, identity));
    mutual = await serve(ServerCredentials.createSsl(pem("ca.pem"), identity, true));
    plain = await serve(ServerCredentials.createInsecure());
    misnamed = await serve(
      ServerCredentials.createSsl(null, [
        { private_key: pem("wrong-name-key.pem"), cert_chain: pem("wrong-name.pem") },
      ]),
    );
  });
  after(() => {
    clients.forEach((c) => c.close());
    [tls, mutual, plain, misnamed].forEach((s) => s?.server.forceShutdown());
  });

  test("the right CA, by file or inline, connects", async () => {
    assert.equal(
      ((await call(tls.address, { caFile: join(DIR, "ca.pem") })) as Job).state,
      "completed",
    );
    assert.equal(
      ((await call(tls.address, { ca: pem("ca.pem").toString() })) as Job).jobId,
      "job-1",
    );
  });

  test("mutual TLS with a certificate the server's CA signed connects", async () => {
    await call(mutual.address, {
      caFile: join(DIR, "ca.pem"),
      certFile: join(DIR, "client.pem"),
      keyFile: join(DIR, "client-key.pem"),
    });
  });

  test("mutual TLS refuses no certificate and one from another CA, saying what to give", async () => {
    await assert.rejects(
      call(mutual.address, { caFile: join(DIR, "ca.pem") }),
      (e: unknown) => e instanceof UnavailableError && /mutual TLS/.test(e.message),
    );
    await assert.rejects(
      call(mutual.address, {
        caFile: join(DIR, "ca.pem"),
        certFile: join(DIR, "other-client.pem"),
        keyFile: join(DIR, "other-client-key.pem"),
      }),
      (e: unknown) => e instanceof UnavailableError && /mutual TLS/.test(e.message),
    );
  });

  test("a server certificate from another CA is refused, naming the CA option", async () => {
    await assert.rejects(
      call(tls.address, { caFile: join(DIR, "other-ca.pem") }),
      (e: unknown) =>
        e instanceof UnavailableError && /not signed by the CA you gave/.test(e.message),
    );
  });

  test("a server certificate for another host is refused, naming the host", async () => {
    await assert.rejects(
      call(misnamed.address, { caFile: join(DIR, "ca.pem") }),
      (e: unknown) => e instanceof UnavailableError && /does not name 127\.0\.0\.1/.test(e.message),
    );
  });

  test("TLS to a plaintext server, and plaintext to a TLS one, fail clearly", async () => {
    await assert.rejects(
      call(plain.address, { caFile: join(DIR, "ca.pem") }),
      (e: unknown) => e instanceof UnavailableError && /does not speak TLS/.test(e.message),
    );
    await assert.rejects(call(tls.address, {}), UnavailableError);
  });

  test("bad TLS options are refused before any call", () => {
    const notPem = join(DIR, "not-a-cert.pem");
    writeFileSync(notPem, "hello");
    assert.throws(
      () => new RaglineClient(tls.address, { caFile: notPem }),
      /caFile ".*not-a-cert.pem" holds no PEM certificate/,
    );
    assert.throws(
      () =>
        new RaglineClient(tls.address, {
          caFile: join(DIR, "ca.pem"),
          certFile: join(DIR, "client.pem"),
        }),
      /cert and key go together/,
    );
    assert.throws(
      () => new RaglineClient(tls.address, { caFile: join(DIR, "missing.pem") }),
      /ENOENT/,
    );
  });
});
