// Fetches /asyncapi.json from a running loan-tracker (or reads a file) and
// validates it with the AsyncAPI parser; prints every diagnostic and fails
// on any of severity "error", or if the document lacks a stream, message or
// consumer the service runs.
//
// Usage: BASE_URL=http://127.0.0.1:PORT node validate.mjs
//        node validate.mjs path/to/asyncapi.json
import { readFileSync } from 'node:fs';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const BASE_URL = process.env.BASE_URL ?? 'http://127.0.0.1:8080';
const SEVERITY = ['error', 'warning', 'information', 'hint'];

async function load() {
  const file = process.argv[2];
  if (file) return readFileSync(file, 'utf8');
  const response = await fetch(`${BASE_URL}/asyncapi.json`);
  if (!response.ok) throw new Error(`/asyncapi.json answered ${response.status}`);
  return response.text();
}

async function main() {
  const text = await load();
  const { document, diagnostics } = await new Parser().parse(text);
  for (const diagnostic of diagnostics) {
    const where = diagnostic.path?.join('.') ?? '';
    console.log(`${SEVERITY[diagnostic.severity] ?? diagnostic.severity}: ${diagnostic.code}: ${diagnostic.message} (${where})`);
  }
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  if (errors.length > 0 || !document) {
    throw new Error(`${errors.length} error diagnostic(s)`);
  }
  const messages = document.allMessages().length;
  const channels = document.allChannels().length;
  const operations = document.allOperations().length;
  // Every event type, the inbound payment and the dead letter; the relay,
  // the dead-letter publisher and the three durable consumers.
  if (messages < 20 || channels < 3 || operations < 5) {
    throw new Error(`too little described: ${messages} messages, ${channels} channels, ${operations} operations`);
  }
  console.log(`asyncapi.json: valid AsyncAPI ${document.version()}, ${channels} channels, ${messages} messages, ${operations} operations`);
}

main().catch((error) => {
  console.error(error.message ?? error);
  process.exit(1);
});
