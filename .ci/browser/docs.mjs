// Loads the docs page of a running loan-tracker in headless Debian Chromium,
// waits for Swagger UI to render its operation list, saves a screenshot, and
// fails when fewer operations render than /openapi.json lists, or when the
// page tries to load anything from another host (it must work offline), or
// when its Content-Security-Policy blocks anything the page needs.
//
// Usage: BASE_URL=http://127.0.0.1:PORT SCREENSHOT=target/docs-screenshot.png node docs.mjs
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE_URL = process.env.BASE_URL ?? 'http://127.0.0.1:8080';
const SCREENSHOT = process.env.SCREENSHOT ?? 'target/docs-screenshot.png';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// How long Swagger UI may take to render every operation.
const RENDER_TIMEOUT_MS = 30_000;
const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

async function specOperationCount() {
  const response = await fetch(`${BASE_URL}/openapi.json`);
  if (!response.ok) throw new Error(`/openapi.json answered ${response.status}`);
  const spec = await response.json();
  return Object.values(spec.paths ?? {})
    .flatMap((item) => Object.keys(item))
    .filter((key) => HTTP_METHODS.has(key)).length;
}

async function main() {
  const expected = await specOperationCount();
  const profile = mkdtempSync(join(tmpdir(), 'lt-chromium-'));
  // A persistent context on a fresh, empty profile is how Playwright takes --user-data-dir.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    ],
  });
  const offHost = [];
  const blocked = [];
  try {
    const page = await browser.newPage();
    // Chromium reports every CSP refusal on the console.
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) blocked.push(message.text());
    });
    const origin = new URL(BASE_URL).origin;
    // Anything not served by the binary itself is refused and reported.
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
      offHost.push(url);
      return route.abort();
    });
    const answer = await page.goto(`${BASE_URL}/docs`, { waitUntil: 'load' });
    const policy = (await answer.allHeaders())['content-security-policy'];
    if (!policy || !policy.includes("frame-ancestors 'none'")) {
      throw new Error(`/docs has no framing policy in its CSP: ${policy}`);
    }
    await page
      .waitForFunction((n) => document.querySelectorAll('.opblock').length >= n, expected, {
        timeout: RENDER_TIMEOUT_MS,
      })
      .catch(() => {});
    const rendered = await page.locator('.opblock').count();
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`docs: ${rendered} operations rendered, ${expected} in /openapi.json; screenshot ${SCREENSHOT}`);
    if (blocked.length > 0) throw new Error(`the CSP blocked: ${blocked.join(' | ')}`);
    if (offHost.length > 0) throw new Error(`docs page requested other hosts: ${offHost.join(', ')}`);
    if (rendered < expected) throw new Error(`only ${rendered} of ${expected} operations rendered`);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`docs browser test FAILED: ${error.message}`);
  process.exit(1);
});
