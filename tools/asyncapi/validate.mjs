// Validate an AsyncAPI document with the official parser (@asyncapi/parser), resolving its relative
// $refs (the JSON Schema files beside it), and exit 1 on any error-severity diagnostic.
//
//   node tools/asyncapi/validate.mjs [FILE]     (default: schemas/asyncapi.yaml of this repository)
//
// Every diagnostic is printed (severity, rule, path, message); warnings do not fail the run.
import path from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import parserPackage from '@asyncapi/parser';

const { Parser, fromFile, DiagnosticSeverity } = parserPackage;
const here = path.dirname(fileURLToPath(import.meta.url));
const target = path.resolve(process.argv[2] ?? path.join(here, '..', '..', 'schemas', 'asyncapi.yaml'));
const SEVERITY = { 0: 'error', 1: 'warning', 2: 'info', 3: 'hint' };

// a path relative to the working directory when it is inside it, absolute otherwise
function shown(file) {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

function where(diagnostic) {
  const at = (diagnostic.path ?? []).join('/') || '(root)';
  const line = diagnostic.range?.start ? `:${diagnostic.range.start.line + 1}` : '';
  return `${shown(diagnostic.source ?? target)}${line} ${at}`;
}

async function main() {
  if (!existsSync(target)) {
    console.error(`error: ${shown(target)} does not exist`);
    return 1;
  }
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, target).parse();
  for (const d of diagnostics) {
    console.log(`${SEVERITY[d.severity] ?? d.severity}\t${d.code}\t${where(d)}\t${d.message}`);
  }
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  if (errors.length > 0 || document === undefined) {
    console.error(`${shown(target)}: INVALID, ${errors.length} error(s)`
      + (document === undefined ? ' (no document could be built)' : ''));
    return 1;
  }
  const counts = {
    channels: document.channels().length,
    operations: document.operations().length,
    messages: document.allMessages().length,
  };
  console.log(`${shown(target)}: valid AsyncAPI ${document.version()} `
    + `(${counts.channels} channels, ${counts.operations} operations, ${counts.messages} messages, `
    + `${diagnostics.length} non-error diagnostic(s))`);
  return 0;
}

main().then((code) => process.exit(code), (error) => {
  console.error(`error: ${error?.stack ?? error}`);
  process.exit(1);
});
