// The committed src/gen is what `npm run gen` makes from the protos today.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url)); // dist-test/test/ -> the package

function files(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      found.set(relative(dir, path), readFileSync(path, "utf8"));
    }
  }
  return found;
}

test("the generated code is current with the protos", () => {
  const out = mkdtempSync(join(tmpdir(), "ragline-gen-"));
  try {
    execFileSync(join(root, "node_modules", ".bin", "buf"), ["generate", "--output", out], {
      cwd: root,
      stdio: "pipe",
    });
    const fresh = files(join(out, "src", "gen"));
    const committed = files(join(root, "src", "gen"));
    assert.deepEqual(
      [...committed.keys()].sort(),
      [...fresh.keys()].sort(),
      "src/gen has other files than the protos make: run `npm run gen` and commit",
    );
    for (const [path, text] of fresh) {
      assert.ok(
        committed.get(path) === text,
        `src/gen/${path} is stale: run \`npm run gen\` in clients/typescript and commit`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("the README shows the Next.js example's route handlers as they are", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  for (const route of ["app/api/documents/route.ts", "app/api/jobs/[id]/events/route.ts"]) {
    const source = readFileSync(join(root, "examples", "nextjs", route), "utf8");
    assert.ok(
      readme.includes("```ts\n" + source + "```"),
      `README.md's ${route} differs from examples/nextjs/${route}`,
    );
  }
});
