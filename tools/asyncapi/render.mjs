// Render offline HTML documentation of an AsyncAPI document with @asyncapi/react-component:
// the page is rendered on the server (readable with JavaScript off) and hydrated in the browser by
// the component's standalone bundle, copied beside it. Nothing is loaded from the network.
//
//   node tools/asyncapi/render.mjs [FILE] [OUT_DIR]
//     FILE     default: schemas/asyncapi.yaml of this repository
//     OUT_DIR  default: docs/asyncapi of this repository; gets index.html, css/, js/
//
// The document is parsed (and its relative $refs resolved) exactly as validate.mjs does; any
// error-severity diagnostic stops the render with exit 1.
import path from 'node:path';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import React from 'react';
import { renderToString } from 'react-dom/server';
import parserPackage from '@asyncapi/parser';
import componentPackage from '@asyncapi/react-component';

const { Parser, fromFile, stringify, DiagnosticSeverity } = parserPackage;
const { AsyncApiComponentWP } = componentPackage;
const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.join(here, '..', '..');
const source = path.resolve(process.argv[2] ?? path.join(repo, 'schemas', 'asyncapi.yaml'));
const out = path.resolve(process.argv[3] ?? path.join(repo, 'docs', 'asyncapi'));
const component = path.dirname(require.resolve('@asyncapi/react-component/package.json'));

// what the page shows; the same object is given to the server render and to the hydration
const CONFIG = {
  show: { sidebar: true, messageExamples: true },
  expand: { messageExamples: true },
  sidebar: { showServers: 'byDefault', showOperations: 'byDefault' },
};

// files copied next to index.html (the bundle without the parser: hydration gets a parsed document)
const ASSETS = [
  ['styles/default.min.css', 'css/asyncapi.min.css'],
  ['browser/standalone/without-parser.js', 'js/without-parser.js'],
  ['browser/standalone/without-parser.js.LICENSE.txt', 'js/without-parser.js.LICENSE.txt'],
];

const escapeHtml = (text) => String(text).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
// JSON inside <script>: no "</script>" or "<!--" can end or confuse the element
const scriptJson = (text) => text.replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

async function main() {
  const { document, diagnostics } = await fromFile(new Parser(), source).parse();
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  if (errors.length > 0 || document === undefined) {
    for (const d of errors) console.error(`error\t${d.code}\t${(d.path ?? []).join('/')}\t${d.message}`);
    console.error(`${source}: not rendered, the document has ${errors.length} error(s) (run validate.mjs)`);
    return 1;
  }
  const body = renderToString(React.createElement(AsyncApiComponentWP, { schema: document, config: CONFIG }));
  const info = document.info();
  const title = `${info.title()} ${info.version()}: AsyncAPI documentation`;
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tools/asyncapi/render.mjs from schemas/asyncapi.yaml (make docs)">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="css/asyncapi.min.css">
</head>
<body>
<div id="root">${body}</div>
<script src="js/without-parser.js"></script>
<script>
var schema = ${scriptJson(JSON.stringify(stringify(document)))};
var config = ${scriptJson(JSON.stringify(CONFIG))};
AsyncApiStandalone.hydrate({ schema: schema, config: config }, document.getElementById("root"));
</script>
</body>
</html>
`;
  mkdirSync(out, { recursive: true });
  for (const [from, to] of ASSETS) {
    mkdirSync(path.dirname(path.join(out, to)), { recursive: true });
    copyFileSync(path.join(component, from), path.join(out, to));
  }
  writeFileSync(path.join(out, 'index.html'), html);
  console.log(`wrote ${path.relative(process.cwd(), path.join(out, 'index.html'))} (${html.length} bytes) and ${ASSETS.length} assets`);
  return 0;
}

main().then((code) => process.exit(code), (error) => {
  console.error(`error: ${error?.stack ?? error}`);
  process.exit(1);
});
