import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { REPO_ROOT } from '@faultline/core';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stackConfig, stackDir, stackPorts, stackProbe, startStack } from './harness.js';

/*
 * Issue "Operate it", the web console: a real headless Chromium (Debian's)
 * opens the URL `faultline console` prints, sees the SP pair and the members;
 * a member killed with `faultline chaos` shows up on the live timeline as a
 * fault, and its causal chain on the page runs from its last stat to its
 * replacement being active. `faultline explain` prints the same chain. The
 * page is saved as a screenshot (test-results/console.png).
 */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (file) => spawnSync(file, ['--version']).status === 0,
);
const SCREENSHOT = path.join(REPO_ROOT, 'test-results', 'console.png');

describe.skipIf(!CHROMIUM && !process.env.CI)('the web console in a real browser', () => {
  let dir: string;
  let stack: ChildProcess;
  let browser: Browser;
  let page: Page;
  const probe = stackProbe(() => dir);
  const { cli, waitFor, threeActive } = probe;

  beforeAll(async () => {
    dir = stackDir('faultline-e2e-console-');
    const ports = await stackPorts();
    ({ child: stack } = await startStack(dir, stackConfig('aedes', ports), probe, { detached: true }));
    await threeActive();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // As root (CI), Chromium runs only without its sandbox.
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (stack && stack.exitCode === null) {
      const stopped = new Promise((resolve) => stack.once('exit', resolve));
      if (stack.pid) process.kill(-stack.pid, 'SIGINT');
      await stopped;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  /** `faultline chaos <action>` on a random active member; its id. */
  const breakMember = async (action: string) => {
    const line = await cli('chaos', action);
    const memberId = /\b(web-[a-z0-9]+)/.exec(line)?.[1];
    if (!memberId) throw new Error(`no member in ${JSON.stringify(line)}`);
    return memberId;
  };
  /** The member's fault on the live timeline (server-sent events, no reload): its kind. */
  const faultOnTimeline = async (memberId: string) => {
    const faulted = page.locator(`#timeline li[data-member="${memberId}"][data-fault]`);
    await faulted.first().waitFor({ timeout: 40_000 });
    return faulted.first().getAttribute('data-fault');
  };
  /** The member's causal chain on the page, asked again until its replacement is active: its steps. */
  const chainToActive = async (memberId: string) => {
    await waitFor(
      async () => {
        await page.locator(`#timeline li[data-member="${memberId}"] button.member`).first().click();
        await page.locator(`#chain p[data-chain="${memberId}"]`).waitFor();
        return (await page.locator('#chain li[data-step="active"]').count()) === 1 ? true : undefined;
      },
      `the chain of ${memberId} to reach its active replacement`,
      60_000,
    );
    return page.locator('#chain li').evaluateAll((items) => items.map((i) => i.getAttribute('data-step')));
  };

  it('shows the pair and the members, a broken member as a fault, and its chain to the active replacement', async () => {
    const { url } = JSON.parse(await cli('console', '--json')) as { url: string };
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    await page.goto(url);
    await page.locator('#sp-rows tr[data-role="ACTIVE"]').waitFor();
    expect(await page.locator('#sp-rows tr[data-role="PASSIVE"]').count()).toBe(1);
    await waitFor(
      async () => ((await page.locator('tr[data-member][data-state="Active"]').count()) === 3 ? true : undefined),
      'three active members on the page',
    );
    await page.locator('#live[data-state="ok"]').waitFor();

    // A killed member: the infrastructure says it is gone (or its stats stop: a MemberFault), on the live timeline.
    const killed = await breakMember('kill-member');
    expect(['gone', 'timeout']).toContain(await faultOnTimeline(killed));
    const killedChain = await chainToActive(killed);
    expect(killedChain.slice(-5)).toEqual(['fault', 'decision', 'terminated', 'spawn', 'active']);
    await threeActive();

    // A member whose agent dies keeps running: its stats stop, the MemberFault states its last stat.
    const memberId = await breakMember('kill-agent');
    expect(await faultOnTimeline(memberId)).toBe('timeout');
    expect(await chainToActive(memberId)).toEqual(['lastStat', 'fault', 'decision', 'terminated', 'spawn', 'active']);
    const replacement = (await page.locator('#chain li[data-step="spawn"]').getAttribute('data-member')) as string;
    expect(replacement).not.toBe(memberId);
    // The replacement's spawn is on the timeline too, and it is an active member in the table.
    await page.locator(`#timeline li[data-action="MemberSpawnAction"][data-member="${replacement}"]`).waitFor();
    await page.locator(`tr[data-member="${replacement}"][data-state="Active"]`).waitFor({ timeout: 10_000 });

    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);

    // The same chain in the terminal.
    const explained = await cli('explain', memberId);
    for (const step of ['lastStat', 'fault', 'decision', 'terminated', 'spawn', 'active'])
      expect(explained).toMatch(new RegExp(`\\s${step}\\s`));
    expect(explained).toContain(replacement);
    const json = JSON.parse(await cli('explain', memberId, '--json')) as { replacedBy: string; steps: unknown[] };
    expect(json).toMatchObject({ replacedBy: replacement });
    expect(json.steps).toHaveLength(6);
  }, 180_000);

  it('keeps its data out of the page as markup, and refuses another host', async () => {
    const { url } = JSON.parse(await cli('console', '--json')) as { url: string };
    const port = new URL(url).port;
    // fetch() sets Host itself: a raw request names another one, as a rebound DNS name would.
    const status = await new Promise<number | undefined>((resolve, reject) =>
      http
        .get({ host: '127.0.0.1', port, path: '/api/state', headers: { host: `evil.example:${port}` } }, (r) => {
          r.resume();
          resolve(r.statusCode);
        })
        .on('error', reject),
    );
    expect(status).toBe(421);
    // A member id that is markup is refused as an id; the page shows the refusal as text.
    await page.fill('#explain-member', '<img src=x onerror=alert(1)>');
    await page.click('#explain-form button');
    await page.locator('#chain p', { hasText: 'not a member id' }).waitFor();
    expect(await page.locator('#chain img').count()).toBe(0);
  });
});
