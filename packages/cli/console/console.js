// The Faultline console's page: the stack's state every 2 s (/api/state), the autoscaler's
// actions live (/api/events, server-sent events) and a member's causal chain on demand
// (/api/members/:id). Everything shown is set as text, never parsed as HTML.

const STATE_INTERVAL_MS = 2_000;
/** Timeline entries kept on the page; older ones are dropped. */
const TIMELINE_MAX = 300;

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const badge = (state, text = state) => el('span', { class: 'badge', 'data-state': state }, text);

/** `maintenance`, who, since when and why in its tooltip (`faultline maintenance on`). */
function maintenanceBadge(m) {
  const node = badge('maintenance');
  node.title = `by ${m.by} since ${m.since.slice(11, 19)} UTC${m.reason ? `: ${m.reason}` : ''}`;
  return node;
}
/** `out of service` (its readiness probe fails), since when and why in its tooltip. */
function serviceBadge(s) {
  const node = badge('out-of-service', 'out of service');
  node.title = `since ${s.since.slice(11, 19)} UTC${s.reason ? `: ${s.reason}` : ''}`;
  return node;
}
const time = (ms) => new Date(ms).toISOString().slice(11, 23);

function age(fromIso, now) {
  const s = Math.max(0, Math.round((now - Date.parse(fromIso)) / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

function delta(ms) {
  if (ms < 1000) return `+${ms} ms`;
  return `+${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

function memberButton(memberId) {
  return el(
    'button',
    { type: 'button', class: 'member', 'data-member': memberId, onclick: () => explain(memberId) },
    memberId,
  );
}

// ---- the stack's state ----

function renderState({ now, status }) {
  const { sp, brokers, services, clusters, degraded } = status;
  $('sp-rows').replaceChildren(
    ...sp.map((s) =>
      el(
        'tr',
        { 'data-node': s.node, 'data-role': s.role },
        el('td', {}, s.node),
        el('td', {}, badge(s.role)),
        el('td', {}, s.epoch ?? '–'),
        el('td', {}, s.lag ? `${s.lag.batches} batches, ${s.lag.ms} ms` : '–'),
        el('td', {}, s.passiveLink ?? '–'),
        el('td', {}, `:${s.thriftPort}`),
      ),
    ),
  );
  $('broker-rows').replaceChildren(
    ...brokers.map((b) =>
      el(
        'tr',
        { 'data-broker': b.name },
        el('td', {}, b.name),
        el('td', {}, `:${b.port}`),
        el('td', {}, badge(b.up ? 'up' : 'DOWN')),
      ),
    ),
  );
  $('service-rows').replaceChildren(
    ...services.map((v) =>
      el(
        'tr',
        { 'data-service': v.name },
        el('td', {}, v.name),
        el('td', {}, badge(v.state)),
        el('td', {}, v.pid ?? '–'),
        el('td', {}, v.restarts),
      ),
    ),
  );
  $('cluster-list').replaceChildren(
    ...clusters.map((c) =>
      el(
        'div',
        { class: 'cluster', 'data-cluster': c.id },
        el(
          'h3',
          {},
          `${c.id} `,
          el('span', { class: 'muted' }, `min ${c.min}, max ${c.max}, ${c.members.length} member(s)`),
          c.faultStormHeldSince ? [' ', badge('held', `fault storm since ${c.faultStormHeldSince.slice(11, 19)}`)] : [],
          c.detectorSilent.map((d) => [' ', badge('held', `detector silent about ${d.networkPartitionId}`)]),
          // Absent from an older supervisor's answer.
          c.maintenance ? [' ', maintenanceBadge(c.maintenance)] : [],
        ),
        el(
          'table',
          {},
          el(
            'thead',
            {},
            el(
              'tr',
              {},
              el('th', {}, 'member'),
              el('th', {}, 'state'),
              el('th', {}, 'age'),
              el('th', {}, 'active for'),
            ),
          ),
          el(
            'tbody',
            {},
            c.members.map((m) =>
              el(
                'tr',
                { 'data-member': m.memberId, 'data-state': m.state },
                el('td', {}, memberButton(m.memberId)),
                el(
                  'td',
                  {},
                  badge(m.state),
                  m.drainingUntil ? [' ', badge('draining', `draining until ${m.drainingUntil.slice(11, 19)}`)] : [],
                  m.outOfService ? [' ', serviceBadge(m.outOfService)] : [],
                  m.maintenance ? [' ', maintenanceBadge(m.maintenance)] : [],
                  m.held ? [' ', badge('held', `fault held: ${m.held}`)] : [],
                ),
                el('td', {}, age(m.createdAt, now)),
                el('td', {}, m.activatedAt ? age(m.activatedAt, now) : '–'),
              ),
            ),
          ),
        ),
      ),
    ),
  );
  const reasons = degraded ?? [];
  $('degraded').hidden = reasons.length === 0;
  $('degraded').textContent = reasons.length ? `Degraded: ${reasons.join('; ')}` : '';
  const health = $('health');
  health.dataset.state = reasons.length ? 'degraded' : 'ok';
  health.textContent = reasons.length ? 'degraded' : 'healthy';
  $('updated').textContent = `updated ${time(now)} UTC`;
}

async function refreshState() {
  try {
    const response = await fetch('/api/state', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    renderState(await response.json());
  } catch (error) {
    const health = $('health');
    health.dataset.state = 'lost';
    health.textContent = `no answer from the stack (${error.message})`;
  } finally {
    setTimeout(refreshState, STATE_INTERVAL_MS);
  }
}

// ---- the live timeline ----

const shown = new Set();

function timelineEntry(a) {
  const fault = a.fault;
  return el(
    'li',
    {
      'data-id': a.id,
      'data-action': a.action,
      'data-member': a.memberId ?? undefined,
      'data-cluster': a.clusterId,
      'data-fault': fault ? fault.kind : undefined,
    },
    el('span', { class: 'muted' }, time(a.at)),
    el('span', { class: 'what' }, fault ? `fault (${fault.kind}) → ${a.action}` : a.action),
    el('span', { class: 'reason' }, `${a.clusterId} `, a.memberId ? memberButton(a.memberId) : '', ` ${a.reason}`),
  );
}

function addActions(actions) {
  const list = $('timeline');
  for (const a of actions) {
    if (shown.has(a.id)) continue;
    shown.add(a.id);
    const entry = timelineEntry(a);
    // Newest first by id: an action that committed late goes where it belongs.
    const after = [...list.children].find((li) => Number(li.dataset.id) < a.id);
    list.insertBefore(entry, after ?? null);
  }
  while (list.children.length > TIMELINE_MAX) {
    shown.delete(Number(list.lastElementChild.dataset.id));
    list.lastElementChild.remove();
  }
}

function followTimeline() {
  const live = $('live');
  const events = new EventSource('/api/events');
  events.addEventListener('open', () => {
    live.dataset.state = 'ok';
    live.textContent = 'timeline: live';
  });
  events.addEventListener('error', () => {
    live.dataset.state = 'lost';
    live.textContent = 'timeline: reconnecting…';
    // The browser retries a dropped stream by itself, but gives up on an answer that is not one (a 503):
    // then this page starts a new one.
    if (events.readyState === EventSource.CLOSED) setTimeout(followTimeline, 5_000);
  });
  events.addEventListener('reset', () => {
    // The registry started again (a database restored): what the page showed is history of another table.
    shown.clear();
    $('timeline').replaceChildren();
  });
  events.addEventListener('action', (event) => {
    try {
      addActions([JSON.parse(event.data)]);
    } catch {
      // A line that is not an action is skipped.
    }
  });
}

// ---- a member's causal chain ----

/** The chain asked for last: an earlier answer that arrives after it is dropped. */
let asked = 0;

async function explain(memberId) {
  const mine = ++asked;
  $('explain-member').value = memberId;
  const chain = $('chain');
  chain.replaceChildren(el('p', { class: 'muted' }, `reading ${memberId}…`));
  try {
    const response = await fetch(`/api/members/${encodeURIComponent(memberId)}`, { cache: 'no-store' });
    const body = await response.json();
    if (mine !== asked) return;
    if (!response.ok) {
      chain.replaceChildren(el('p', {}, `${memberId}: ${body.error ?? `HTTP ${response.status}`}`));
      return;
    }
    renderChain(body);
  } catch (error) {
    if (mine === asked) chain.replaceChildren(el('p', {}, `${memberId}: ${error.message}`));
  }
}

function renderChain(c) {
  let before;
  const steps = c.steps.map((s) => {
    const item = el(
      'li',
      { 'data-step': s.step, 'data-member': s.memberId },
      el('span', { class: 'step' }, s.step),
      el('span', { class: 'muted' }, `${time(s.at)} `),
      s.what,
      before === undefined ? '' : el('span', { class: 'delta' }, delta(s.at - before)),
    );
    before = s.at;
    return item;
  });
  const note = !c.faulted
    ? 'No fault recorded for this member.'
    : c.replacedBy === null
      ? 'No replacement spawned yet.'
      : ['Replaced by ', memberButton(c.replacedBy), '.'];
  $('chain').replaceChildren(
    el(
      'p',
      { 'data-chain': c.memberId },
      el('strong', {}, c.memberId),
      ` in ${c.clusterId ?? '?'}, `,
      badge(c.state ?? 'pruned'),
      c.createdAt ? el('span', { class: 'muted' }, ` created ${time(c.createdAt)}`) : '',
    ),
    el('ol', {}, steps),
    el('p', { class: 'muted' }, note),
  );
}

$('explain-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const memberId = $('explain-member').value.trim();
  if (memberId) void explain(memberId);
});

refreshState();
followTimeline();
