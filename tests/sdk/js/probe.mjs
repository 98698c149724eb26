// `node probe.mjs --endpoint URL [--provider NAME]`: one long-lived AWS SDK for JavaScript v3
// STS client, driven line by line (the same protocol as tests/sdk/rust and tests/sdk/python).
//
// --provider default (the client's own default chain, as an application gets it),
// fromNodeProviderChain, fromContainerMetadata, fromHttp, fromInstanceMetadata, fromIni,
// fromProcess: the explicit providers of @aws-sdk/credential-providers, called with no options,
// so each reads only the environment the test sets.
// stdin `call` -> one JSON line {"ok":true,"arn","account"} or {"ok":false,"error"}; EOF ends.
import { createInterface } from "node:readline";
import { STSClient, GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import * as providers from "@aws-sdk/credential-providers";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const endpoint = opt("--endpoint");
const provider = opt("--provider", "default");
if (!endpoint) {
  console.error("usage: node probe.mjs --endpoint URL [--provider NAME]");
  process.exit(2);
}
const config = { endpoint, maxAttempts: 1 };
if (provider !== "default") {
  if (typeof providers[provider] !== "function") {
    console.error(`unknown provider ${provider}`);
    process.exit(2);
  }
  config.credentials = providers[provider]();
}
const sts = new STSClient(config);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
out({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== "call") continue;
  try {
    const r = await sts.send(new GetCallerIdentityCommand({}));
    out({ ok: true, arn: r.Arn, account: r.Account });
  } catch (e) {
    out({ ok: false, error: `${e.name}: ${e.message}` });
  }
}
