/* sdxl-sweep viewer: draws the grid from the JSON in #sweep-data. The view lives in the URL hash:
   #x=AXIS&y=AXIS[&sx=AXIS][&sy=AXIS]&AXIS=VALUE...[&hide=AXIS:VALUE...]. All text goes in via textContent. */
(() => {
  'use strict';
  const D = JSON.parse(document.getElementById('sweep-data').textContent);
  const A = D.axes;
  const ROLES = ['x', 'y', 'sx', 'sy'];
  const ROLE_TEXT = { x: 'X', y: 'Y', sx: 'super X', sy: 'super Y', pick: 'pick' };
  const ROLE_TIP = {
    x: 'columns', y: 'rows', sx: 'columns of grids', sy: 'rows of grids', pick: 'show one value (pick it on the right)',
  };
  const RESERVED = new Set([...ROLES, 'hide', 'score', 'sortx']);
  // report.scores: one score per scorer per cell (c.sc), the ranking's sentences; none when the run has none.
  const SC = D.scores || { names: [], lines: [] };
  const FIT_FLOOR = 160; // fit-to-height never shrinks the largest image below this (css px); scroll instead
  const FIT_MIN = 24; // the smallest cell fit goes to (css px, longest side); past it fit says so and scrolls
  const SHORT = 40; // characters of a value shown in a button or a head; the full text is in its title
  const byKey = new Map(D.cells.map((c, i) => [c.k.join(','), i]));
  const maxEdge = Math.max(1, ...D.cells.map((c) => Math.max(c.w || 0, c.h || 0)));
  const S = {
    role: { x: -1, y: -1, sx: -1, sy: -1 },
    pick: A.map(() => 0),
    hidden: A.map(() => new Set()),
    size: 'fit', // 'fit', 'native' or a number: the longest image side in css px (the size slider)
    seconds: true,
    cycleAxis: -1,
    cycleSecs: 2,
    timer: null,
    large: null, // {x, y, sx, sy}: value indices of the cell shown large
    score: -1, // the scorer shown under each image and as its colour (index into SC.names), -1: none
    sortX: false, // X values ordered by their mean score (highest first)
  };
  const $ = (id) => document.getElementById(id);
  let sized = []; // [node, w, h] of every image-sized element, rescaled without a rebuild
  let nodes = new Map(); // posKey -> the focusable node of that grid position
  const posKey = (pos) => ROLES.map((r) => pos[r]).join(',');
  let scale = 1;
  let problems = []; // what the link asked for and did not get (shown in #notice)

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  // --- state helpers ------------------------------------------------------------------------------------
  const roleOf = (a) => ROLES.find((r) => S.role[r] === a) || 'pick';
  const axisName = (a) => (a >= 0 ? A[a].name : '');
  const title = (a) => A[a].title || A[a].name;
  // A value as heads and buttons show it: the sweep file's title for it (titles:), else its label.
  const shown = (a, v) => (A[a].vt && A[a].vt[v]) || A[a].shown[v];
  // Its whole text for hover: title, full value and the sweep file's description (descriptions:).
  const full = (a, v) => [A[a].vt && A[a].vt[v] ? `${A[a].vt[v]}: ${A[a].shown[v]}` : A[a].shown[v],
    A[a].vd && A[a].vd[v]].filter(Boolean).join('\n');
  // In one line (the current view, the large view): the title with the full value after it.
  const inline = (a, v) => (A[a].vt && A[a].vt[v] ? `${A[a].vt[v]} (${A[a].shown[v]})` : A[a].shown[v]);
  const short = (text) => (text.length > SHORT ? `${text.slice(0, SHORT - 1)}…` : text);
  const visible = (a) => (a < 0 ? [-1] : A[a].values.map((_, i) => i).filter((i) => !S.hidden[a].has(i)));
  const pickAxes = () => A.map((_, a) => a).filter((a) => roleOf(a) === 'pick');

  function cellAt(pos) {
    const key = S.pick.slice();
    for (const r of ROLES) if (S.role[r] >= 0) key[S.role[r]] = pos[r];
    const i = byKey.get(key.join(','));
    return i === undefined ? null : i;
  }

  function axisIndex(name) {
    if (!name) return -1;
    let i = A.findIndex((a) => a.name === name);
    const alias = D.aliases[name.toLowerCase()];
    if (i < 0 && alias) i = A.findIndex((a) => a.name === alias);
    return i;
  }

  // A value from a link: exact text first, then the same number (7 == 7.0), then '(none)' for empty.
  function valueIndex(a, text) {
    const values = A[a].values;
    let i = values.indexOf(text);
    if (i >= 0) return i;
    const num = text.trim() === '' ? NaN : Number(text);
    if (Number.isFinite(num)) {
      i = values.findIndex((v) => v.trim() !== '' && Number(v) === num);
      if (i >= 0) return i;
    }
    return text === '(none)' ? values.indexOf('') : -1;
  }

  function setRole(a, role) {
    const old = roleOf(a);
    if (old === role) return;
    if (role === 'pick') {
      S.role[old] = -1;
    } else {
      const other = S.role[role];
      S.role[role] = a;
      if (old !== 'pick') S.role[old] = other; // swap: X <-> Y in one click
    }
    fixPicks(-1);
  }

  // When the picks select no cell at all (sparse grids, e.g. several sweeps), move the other picks to values
  // that have cells, keeping the one just chosen.
  function fixPicks(keep) {
    const picks = pickAxes();
    const matches = (c, axes) => axes.every((b) => c.k[b] === S.pick[b]);
    if (!D.cells.length || D.cells.some((c) => matches(c, picks))) return;
    const order = (keep >= 0 ? [keep] : []).concat(picks.filter((a) => a !== keep));
    const fixed = [];
    for (const a of order) {
      if (a !== keep) {
        const cand = D.cells.filter((c) => matches(c, fixed));
        if (cand.length && !cand.some((c) => c.k[a] === S.pick[a])) S.pick[a] = Math.min(...cand.map((c) => c.k[a]));
      }
      fixed.push(a);
    }
  }

  // Pick values with no cell under the other picks are drawn dashed.
  function availablePicks() {
    const picks = pickAxes();
    const ok = A.map(() => new Set());
    for (const c of D.cells) {
      const off = picks.filter((b) => c.k[b] !== S.pick[b]);
      if (off.length === 0) picks.forEach((b) => ok[b].add(c.k[b]));
      else if (off.length === 1) ok[off[0]].add(c.k[off[0]]);
    }
    return ok;
  }

  // --- the URL hash -------------------------------------------------------------------------------------
  function decode(text) {
    try {
      return decodeURIComponent(text);
    } catch (e) {
      return text;
    }
  }

  // A link that asks for what this run does not have is shown as near as possible and says so: `problems`
  // collects one line per thing ignored, finished with what is shown instead once the view is settled.
  function readHash() {
    const pairs = location.hash.replace(/^#/, '').split('&').filter(Boolean).map((part) => {
      const at = part.indexOf('=');
      return at < 0 ? [decode(part), ''] : [decode(part.slice(0, at)), decode(part.slice(at + 1))];
    });
    S.role = { x: axisIndex(D.default.x), y: axisIndex(D.default.y), sx: -1, sy: -1 };
    S.pick = A.map(() => 0); // axes left out take their first value
    S.score = -1;
    S.sortX = false;
    S.hidden = A.map(() => new Set());
    const found = [];
    const names = A.map((axis) => axis.name).join(', ') || 'none';
    const given = new Map();
    for (const [k, v] of pairs) {
      if (!ROLES.includes(k)) continue;
      if (given.has(k)) found.push(() => `${k}=${v}: ${k} is given twice, the first (${given.get(k)}) is used`);
      else given.set(k, v);
    }
    const taken = new Map(); // axis -> the role that claimed it first in the link
    for (const r of ROLES) {
      if (!given.has(r)) continue;
      const text = given.get(r);
      const a = axisIndex(text);
      if (a < 0 && text !== '') {
        found.push(() => `${r}=${text}: no axis "${text}" in this run (axes: ${names}); ${ROLE_TEXT[r]} shows ${
          S.role[r] >= 0 ? title(S.role[r]) : 'nothing'} instead`);
        continue;
      }
      if (a >= 0 && taken.has(a)) {
        found.push(() => `${r}=${text}: ${A[a].name} is already ${ROLE_TEXT[taken.get(a)]}; ${ROLE_TEXT[r]} shows ${
          S.role[r] >= 0 ? title(S.role[r]) : 'nothing'} instead`);
        if (S.role[r] === a) S.role[r] = -1;
        continue;
      }
      if (a >= 0) taken.set(a, r);
      for (const other of ROLES) if (other !== r && S.role[other] === a && a >= 0) S.role[other] = -1;
      S.role[r] = a;
    }
    // A direction left out or refused (while other axes are free) takes the first free axis; `x=` means none.
    for (const r of ['y', 'x']) {
      const free = A.findIndex((_, a) => roleOf(a) === 'pick');
      if (S.role[r] < 0 && given.get(r) !== '' && free >= 0 && (r === 'x' || A.length > 1)) S.role[r] = free;
    }
    for (const [key, value] of pairs) {
      if (key === 'score') {
        S.score = SC.names.indexOf(value);
        if (S.score < 0) found.push(() => `score=${value}: no score "${value}" in this run (${SC.names.join(', ') || 'none'})`);
      } else if (key === 'sortx') {
        S.sortX = value === '1';
      } else if (key === 'hide') {
        const at = value.indexOf(':');
        const a = at < 0 ? -1 : axisIndex(value.slice(0, at));
        const v = a >= 0 ? valueIndex(a, value.slice(at + 1)) : -1;
        if (v >= 0) S.hidden[a].add(v);
        else found.push(() => `hide=${value}: no such axis value, nothing hidden for it`);
      } else if (!RESERVED.has(key)) {
        const a = axisIndex(key);
        if (a < 0) {
          found.push(() => `${key}=${value}: no axis "${key}" in this run (axes: ${names}), ignored`);
          continue;
        }
        const v = valueIndex(a, value);
        if (v < 0) {
          found.push(() => `${key}=${value}: ${A[a].name} has no value "${value}" (${A[a].values.map(
            (x, i) => short(shown(a, i))).join(', ')}); ${roleOf(a) === 'pick'
            ? `showing ${short(shown(a, S.pick[a]))} instead` : `${A[a].name} is ${ROLE_TEXT[roleOf(a)]}, all its values shown`}`);
        } else {
          S.pick[a] = v;
        }
      }
    }
    for (const r of ROLES) {
      const a = S.role[r];
      if (a >= 0 && visible(a).length === 0) S.hidden[a].clear();
    }
    fixPicks(-1);
    problems = found.map((text) => text());
  }

  function drawNotice() {
    $('notice').hidden = problems.length === 0;
    $('notice-text').textContent = problems.length
      ? `This link asks for what this run does not have: ${problems.join('; ')}.` : '';
  }

  function hashText() {
    const enc = encodeURIComponent;
    const parts = ['x', 'y'].map((r) => `${r}=${enc(axisName(S.role[r]))}`);
    for (const r of ['sx', 'sy']) if (S.role[r] >= 0) parts.push(`${r}=${enc(axisName(S.role[r]))}`);
    for (const a of pickAxes()) parts.push(`${enc(A[a].name)}=${enc(A[a].values[S.pick[a]])}`);
    A.forEach((axis, a) => {
      for (const v of [...S.hidden[a]].sort((p, q) => p - q)) parts.push(`hide=${enc(axis.name)}:${enc(axis.values[v])}`);
    });
    if (S.score >= 0) parts.push(`score=${enc(SC.names[S.score])}`);
    if (S.score >= 0 && S.sortX) parts.push('sortx=1');
    return '#' + parts.join('&');
  }

  function changed() {
    const text = hashText();
    if (location.hash !== text) history.replaceState(null, '', text);
    draw();
  }

  // --- header and controls ------------------------------------------------------------------------------
  function drawHeader() {
    const counts = $('counts');
    counts.replaceChildren();
    const total = D.cells.length;
    counts.append(`${total} image${total === 1 ? '' : 's'}: ${D.counts.ok} ok`);
    for (const word of ['failed', 'missing']) {
      if (D.counts[word]) counts.append(' · ', el('span', { class: word, text: `${D.counts[word]} ${word}` }));
    }
    if (D.prompt !== null && D.prompt !== undefined) {
      $('prompt').hidden = false;
      $('prompt').replaceChildren(el('b', { text: 'prompt ' }), D.prompt);
    }
    if (SC.lines.length) {
      $('ranking').hidden = false;
      $('ranking').replaceChildren(el('b', { text: 'scores ' }), SC.lines.join('\n'));
    }
    if (D.fixed.length) {
      $('fixed').hidden = false;
      $('fixed').replaceChildren(el('b', { text: 'same in every image ' }), D.fixed.map(([k, v]) => `${k} ${v}`).join(' · '));
    }
  }

  // One line that names the view: what each direction shows, and every picked axis with its full value.
  function drawCurrent() {
    const box = $('current');
    box.replaceChildren(el('b', { text: 'current view ' }));
    const parts = [];
    for (const r of ['x', 'y', 'sx', 'sy']) {
      if (S.role[r] >= 0) parts.push([`${ROLE_TEXT[r]} `, title(S.role[r])]);
    }
    for (const a of pickAxes()) parts.push([`${title(a)} = `, inline(a, S.pick[a])]);
    parts.forEach(([k, v], n) => {
      if (n) box.append(' · ');
      box.append(el('span', { class: 'k', text: k }), el('span', { class: 'v', 'data-axis': null, text: v }));
    });
  }

  function drawAxes() {
    const table = $('axes');
    table.replaceChildren();
    if (!A.length) {
      table.append(el('tr', {}, el('td', { text: 'Nothing varies in this run.' })));
      return;
    }
    const ok = availablePicks();
    A.forEach((axis, a) => {
      const role = roleOf(a);
      const seg = el('div', { class: 'seg', role: 'group', 'aria-label': `${axis.name} shown as` });
      for (const r of [...ROLES, 'pick']) {
        seg.append(el('button', {
          type: 'button', 'data-axis': axis.name, 'data-role': r, 'aria-pressed': String(role === r),
          title: ROLE_TIP[r], text: ROLE_TEXT[r],
          onclick: () => { setRole(a, r); changed(); },
        }));
      }
      const list = el('div', { class: 'list' });
      axis.values.forEach((value, v) => {
        const hover = full(a, v);
        const label = short(shown(a, v));
        if (role === 'pick') {
          list.append(el('button', {
            type: 'button', 'data-axis': axis.name, 'data-value': value, 'aria-pressed': String(S.pick[a] === v),
            class: ok[a].has(v) ? null : 'empty', title: hover, text: label,
            onclick: () => { S.pick[a] = v; fixPicks(a); changed(); },
          }));
        } else {
          const on = !S.hidden[a].has(v);
          const box = el('input', {
            type: 'checkbox', 'data-axis': axis.name, 'data-value': value, checked: on,
            onchange: (event) => {
              if (event.target.checked) S.hidden[a].delete(v);
              else if (visible(a).length > 1) S.hidden[a].add(v);
              else event.target.checked = true; // keep at least one value of a shown axis
              changed();
            },
          });
          list.append(el('label', { class: on ? null : 'off', title: `${hover} (untick to hide)` }, box, label));
        }
      });
      table.append(el('tr', { 'data-axis': axis.name },
        el('th', { title: axis.description || (axis.name === title(a) ? null : axis.name) }, title(a),
          axis.description ? el('small', { class: 'desc', text: axis.description }) : null),
        el('td', {}, seg), el('td', { class: 'vals' }, list)));
    });
  }

  function drawOptions() {
    const box = $('options');
    box.replaceChildren();
    const size = el('div', { class: 'seg', role: 'group', 'aria-label': 'image size' });
    for (const [mode, text, tip] of [['fit', 'fit to window', 'scale the grid to the window'],
      ['native', 'native size', 'one image pixel per screen pixel (loads the full PNGs)']]) {
      size.append(el('button', {
        type: 'button', id: `size-${mode}`, 'aria-pressed': String(S.size === mode), title: tip, text,
        onclick: () => { S.size = mode; draw(); },
      }));
    }
    const slider = el('input', {
      type: 'range', id: 'size-slider', min: String(FIT_MIN), max: String(Math.round(capScale() * maxEdge)), step: '1',
      value: String(Math.round(scale * maxEdge)), 'aria-label': 'image size (longest side, px)',
      title: 'longest image side in px',
      oninput: (event) => {
        const before = source(D.cells[0] || {});
        S.size = Number(event.target.value);
        $('size-fit').setAttribute('aria-pressed', 'false');
        $('size-native').setAttribute('aria-pressed', 'false');
        if (source(D.cells[0] || {}) !== before) drawGrid(); // thumbnails <-> PNGs
        else resize();
        $('fit-note').hidden = true;
      },
    });
    box.append(el('div', { class: 'row' }, el('span', { class: 'name', text: 'size' }), size, slider,
      el('label', {}, el('input', {
        type: 'checkbox', id: 'show-seconds', checked: S.seconds,
        onchange: (event) => { S.seconds = event.target.checked; draw(); },
      }), ' seconds')));
    if (SC.names.length) {
      const which = el('select', {
        id: 'score-name', title: 'the score under each image; its colour runs from the lowest (dark) to the highest (yellow)',
        onchange: (event) => { S.score = Number(event.target.value); changed(); },
      }, el('option', { value: '-1', text: '(none)' }), ...SC.names.map((n, i) => el('option', { value: String(i), text: n })));
      which.value = String(S.score);
      box.append(el('div', { class: 'row' }, el('span', { class: 'name', text: 'score' }), which,
        el('label', { title: 'order X by the mean score of each column (highest first)' }, el('input', {
          type: 'checkbox', id: 'sort-score', checked: S.sortX, disabled: S.score < 0,
          onchange: (event) => { S.sortX = event.target.checked; changed(); },
        }), ' sort X by score')));
    }
    const picks = pickAxes();
    if (S.cycleAxis >= 0 && !picks.includes(S.cycleAxis)) stopCycle();
    const choice = el('select', {
      id: 'cycle-axis', disabled: picks.length === 0,
      onchange: (event) => { S.cycleAxis = Number(event.target.value); if (S.timer) startCycle(); },
    });
    if (!picks.length) choice.append(el('option', { value: '-1', text: '(no axis left to cycle)' }));
    for (const a of picks) choice.append(el('option', { value: String(a), text: A[a].name }));
    if (picks.length && !picks.includes(S.cycleAxis)) S.cycleAxis = picks[0];
    choice.value = String(S.cycleAxis);
    const secs = el('input', {
      type: 'number', id: 'cycle-seconds', min: '0.2', step: '0.5', value: String(S.cycleSecs),
      onchange: (event) => {
        const value = Number(event.target.value);
        if (Number.isFinite(value) && value >= 0.2) S.cycleSecs = value;
        if (S.timer) startCycle();
      },
    });
    const go = el('button', {
      type: 'button', id: 'cycle-go', class: 'go', disabled: picks.length === 0, text: S.timer ? 'stop' : 'start',
      onclick: () => { if (S.timer) stopCycle(); else startCycle(); drawOptions(); },
    });
    box.append(el('div', { class: 'row' }, el('span', { class: 'name', text: 'cycle' }), choice, 'every', secs, 's', go));
    box.append(el('div', { class: 'row hint', text: 'Click an image (or Tab to it, Enter) for its parameters; arrows '
      + 'move along X/Y, Shift+arrows along super X/Y, Alt+arrows step the first two picked axes; Esc closes.' }));
  }

  function startCycle() {
    stopCycle();
    if (S.cycleAxis < 0) return;
    S.timer = setInterval(() => {
      const a = S.cycleAxis;
      if (a < 0 || roleOf(a) !== 'pick') { stopCycle(); drawOptions(); return; }
      const n = A[a].values.length;
      let v = S.pick[a];
      for (let step = 0; step < n; step += 1) {
        v = (v + 1) % n;
        if (!S.hidden[a].has(v)) break;
      }
      S.pick[a] = v;
      changed();
    }, S.cycleSecs * 1000);
  }

  function stopCycle() {
    if (S.timer) clearInterval(S.timer);
    S.timer = null;
  }

  // --- the grid -----------------------------------------------------------------------------------------
  function dims(c) {
    return [c.w || c.h || maxEdge, c.h || c.w || maxEdge];
  }

  // One seconds figure per cell, the sheets' own: '≈0.07 s' from the timing fit, else the measured '0.06 s'.
  const secondsText = (c) => `${c.sf ? '≈' : ''}${c.s.toFixed(2)} s`;

  function encodePath(path) {
    return path.split('/').map(encodeURIComponent).join('/');
  }

  function source(c) {
    // Native size shows the real pixels (the PNG, loaded as it scrolls into view); fit shows thumbnails.
    // A slider size above the thumbnails' edge shows the PNGs too.
    const big = S.size === 'native' || (typeof S.size === 'number' && S.size > D.thumb_edge);
    return big ? c.i || c.t : c.t || c.i;
  }

  // An image file that is gone (deleted or moved after the report): the cell is counted and marked missing
  // in the header, the grid and the large view, once, instead of the browser's broken-image icon.
  let redrawGone = 0;
  function gone(c, path) {
    if (c.st !== 'ok') return;
    c.st = 'missing';
    c.e = `image file not found: ${path}`;
    D.counts.ok -= 1;
    D.counts.missing = (D.counts.missing || 0) + 1;
    if (redrawGone) return;
    redrawGone = requestAnimationFrame(() => {
      redrawGone = 0;
      const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.cell : null;
      drawHeader();
      drawGrid();
      if (S.large) drawLarge();
      if (focused && !S.large) { const n = document.querySelector(`#cells [data-cell="${CSS.escape(focused)}"]`); if (n) n.focus(); }
    });
  }

  function cellNode(i, pos) {
    const fig = el('figure', { class: 'cell' });
    const open = (event) => openLarge(pos, event.currentTarget);
    if (i === null) {
      const none = el('div', { class: 'mark none', title: 'no image with these values', text: '—' });
      sized.push([none, maxEdge, maxEdge]);
      fig.append(none);
      return fig;
    }
    const c = D.cells[i];
    const [w, h] = dims(c);
    const src = c.st === 'ok' ? source(c) : '';
    if (src) {
      const img = el('img', {
        'data-cell': c.id, 'data-job': c.job || null, 'data-status': 'ok', loading: 'lazy', decoding: 'async',
        alt: c.id, title: 'click (or Enter) for the full image and its parameters', onclick: open, tabindex: '0',
        onerror: () => gone(c, c.i || src),
      });
      nodes.set(posKey(pos), img);
      img.src = encodePath(src);
      sized.push([img, w, h]);
      fig.append(img);
    } else {
      const kind = c.st === 'ok' ? 'noimage' : c.st;
      const word = c.st === 'ok' ? 'no image' : c.st;
      const mark = el('div', {
        class: `mark ${kind}`, 'data-cell': c.id, 'data-job': c.job || null, 'data-status': c.st === 'ok' ? 'noimage' : c.st,
        title: c.e || word, onclick: open, tabindex: '0',
      }, el('b', { text: word }), c.e ? el('span', { class: 'err', text: c.e }) : null);
      nodes.set(posKey(pos), mark);
      sized.push([mark, w, h]);
      fig.append(mark);
    }
    const words = [];
    if (S.seconds && c.st === 'ok' && c.s !== null && c.s !== undefined) words.push(secondsText(c));
    const value = scoreOf(c);
    if (value !== null) {
      const colour = scoreColour(value);
      words.push(`${SC.names[S.score]} ${value.toFixed(scoreDigits())}`);
      (fig.firstChild).style.boxShadow = `0 0 0 3px ${colour}`;
      fig.dataset.score = String(value);
    }
    if (words.length) {
      fig.append(el('figcaption', {}, value !== null ? el('span', { class: 'swatch', style: `background:${scoreColour(value)}` }) : null,
        words.join(' · ')));
    }
    return fig;
  }

  // --- scores -------------------------------------------------------------------------------------------
  const scoreOf = (c) => (S.score >= 0 && c && c.sc && c.sc[S.score] !== null && c.sc[S.score] !== undefined ? c.sc[S.score] : null);
  function scoreRange() {
    const values = D.cells.map(scoreOf).filter((v) => v !== null);
    return values.length ? [Math.min(...values), Math.max(...values)] : [0, 1];
  }
  // Decimals enough to tell this run's scores apart (3 significant digits of their range).
  function scoreDigits() {
    const [lo, hi] = scoreRange();
    const span = hi - lo || Math.abs(hi) || 1;
    return Math.min(4, Math.max(1, 2 - Math.floor(Math.log10(span))));
  }
  // Viridis (dark purple -> teal -> yellow): ordered, and readable with the common colour-vision deficiencies.
  const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function scoreColour(value) {
    const [lo, hi] = scoreRange();
    const t = hi > lo ? (value - lo) / (hi - lo) : 1;
    const f = Math.min(0.9999, Math.max(0, t)) * (VIRIDIS.length - 1);
    const i = Math.floor(f);
    const mix = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * (f - i)));
    return `rgb(${mix.join(',')})`;
  }

  // X values by the mean score of their column among the cells drawn (highest first; unscored last).
  function sortedByScore(xs, pos) {
    const [x, y, sx, sy] = ROLES.map((r) => S.role[r]);
    const mean = new Map(xs.map((xv) => {
      const got = [];
      for (const bv of visible(sy)) for (const yv of visible(y)) for (const sv of visible(sx)) {
        const i = cellAt({ ...pos, x: xv, y: yv, sx: sv, sy: bv });
        const v = i === null ? null : scoreOf(D.cells[i]);
        if (v !== null) got.push(v);
      }
      return [xv, got.length ? got.reduce((a, b) => a + b, 0) / got.length : -Infinity];
    }));
    return x >= 0 ? [...xs].sort((a, b) => mean.get(b) - mean.get(a)) : xs;
  }

  function drawGrid() {
    const grid = $('cells');
    grid.replaceChildren();
    sized = [];
    nodes = new Map();
    const [x, y, sx, sy] = ROLES.map((r) => S.role[r]);
    const xs = S.sortX && S.score >= 0 ? sortedByScore(visible(x), {}) : visible(x);
    const ys = visible(y);
    const sxs = visible(sx);
    const sys = visible(sy);
    grid.style.gridTemplateColumns = ['max-content', ...sxs.flatMap(() => xs.map(() => 'max-content'))].join(' ');
    const spanX = `span ${xs.length}`;
    // Header rows (class hdr, data-row n): the axis names, then super X values, then X values. Each sticks
    // below the rows above it (stick()); the axis names sit on a row of their own so the label column stays
    // as narrow as the Y values.
    const names = [];
    for (const [r, arrow] of [['x', ' →'], ['y', ' ↓'], ['sx', ' ⇉'], ['sy', ' ⇊']]) {
      const a = S.role[r];
      if (a >= 0) names.push(el('span', { class: 'k', text: `${ROLE_TEXT[r]} ` }), el('b', { text: title(a) + arrow, title: A[a].description || null }), '   ');
    }
    if (names.length) grid.append(el('div', { class: 'hdr axisrow', 'data-row': '0' }, el('span', {}, ...names)));
    if (sx >= 0) {
      grid.append(el('div', { class: 'hdr corner', 'data-row': '1' }));
      for (const v of sxs) {
        const hover = `${title(sx)} = ${full(sx, v)}`;
        grid.append(el('div', { class: 'hdr superhead', 'data-row': '1', style: `grid-column: ${spanX}`, title: hover },
          el('span', { text: `${title(sx)} = ${short(shown(sx, v))}` })));
      }
    }
    if (x >= 0) {
      grid.append(el('div', { class: 'hdr corner', 'data-row': '2' }));
      sxs.forEach((_, b) => xs.forEach((v, j) => {
        grid.append(el('div', { class: `hdr colhead${b > 0 && j === 0 ? ' bstart' : ''}`, 'data-row': '2',
          title: full(x, v) }, el('span', { text: short(shown(x, v)) })));
      }));
    }
    let count = 0;
    for (const bv of sys) {
      if (sy >= 0) {
        const hover = `${title(sy)} = ${full(sy, bv)}`;
        grid.append(el('div', { class: 'band', title: hover }, el('span', { text: `${title(sy)} = ${short(shown(sy, bv))}` })));
      }
      for (const yv of ys) {
        grid.append(el('div', { class: 'rowhead', title: y >= 0 ? full(y, yv) : '' },
          el('span', { text: y >= 0 ? short(shown(y, yv)) : '' })));
        sxs.forEach((sv, b) => xs.forEach((xv, j) => {
          const pos = { x: xv, y: yv, sx: sv, sy: bv };
          const i = cellAt(pos);
          if (i !== null) count += 1;
          const node = cellNode(i, pos);
          if (b > 0 && j === 0) node.classList.add('bstart');
          grid.append(node);
        }));
      }
    }
    $('nothing').hidden = count > 0;
    grid.hidden = count === 0;
    resize();
  }

  // The size the controls ask for: fit (with a note when even the smallest cells do not fit), native or the
  // slider's; then the sticky offsets, which depend on how the heads wrap at that size.
  function resize() {
    let note = '';
    if (S.size === 'fit') {
      const [k, fits] = fitScale();
      applyScale(k);
      if (!fits) {
        note = `Fit: ${nodes.size} images do not fit the window's width even at ${FIT_MIN} px a cell; scroll sideways, `
          + 'or hide values / pick an axis instead of super X.';
      }
    } else {
      applyScale(S.size === 'native' ? 1 : S.size / maxEdge);
    }
    // Small cells: smaller heads (a 3-digit value still fits 24 px) and no time captions (clipped, they misread).
    $('cells').classList.toggle('small', scale * maxEdge < 40);
    $('fit-note').hidden = !note;
    $('fit-note').textContent = note;
    const slider = $('size-slider');
    if (slider) slider.value = String(Math.round(scale * maxEdge));
    stick();
  }

  // Each header row's `top` is the height of the rows above it, measured after layout, so stuck rows stack;
  // super-Y bands stick under the lot.
  function stick() {
    const grid = $('cells');
    // All reads, then all writes: one layout, not one per head (a sticky offset does not change a height).
    const rows = ['0', '1', '2'].map((row) => [...grid.querySelectorAll(`.hdr[data-row="${row}"]`)]);
    const heights = rows.map((cells) => Math.max(0, ...cells.map((node) => node.getBoundingClientRect().height)));
    let top = 0;
    rows.forEach((cells, n) => {
      for (const node of cells) node.style.top = `${top}px`;
      top += heights[n];
    });
    for (const band of grid.querySelectorAll('.band')) band.style.top = `${top}px`;
  }

  function applyScale(k) {
    scale = k;
    for (const [node, w, h] of sized) {
      node.style.width = `${Math.max(1, Math.round(w * k))}px`;
      node.style.height = `${Math.max(1, Math.round(h * k))}px`;
      if (node.tagName === 'IMG') {
        node.width = Math.max(1, Math.round(w * k));
        node.height = Math.max(1, Math.round(h * k));
      }
    }
  }

  const capScale = () => Math.max(2 * Math.min(D.thumb_edge, maxEdge), 256) / maxEdge; // <= 2x a thumbnail

  // One factor for every image (relative sizes stay true): the largest that fits the grid to the window's
  // width, and to the height left below the controls when that keeps the largest image >= FIT_FLOOR px;
  // never more than twice a thumbnail, never less than FIT_MIN px a cell (then [k, false]: it does not fit).
  // Labels and captions keep their size, so the layout's own minimum is measured once with the images shrunk
  // to nothing, sizes are solved for, and the result is checked against the page's real width (a scrollbar
  // that appears, a head that wraps) and solved again for what is left over.
  function fitScale() {
    const grid = $('cells');
    if (!sized.length || grid.hidden) return [1, true];
    const kMin = FIT_MIN / maxEdge;
    const cap = capScale();
    applyScale(1 / maxEdge);
    const cols = new Map();
    const rows = new Map();
    for (const [node, w, h] of sized) {
      const fig = node.parentElement;
      const c = cols.get(fig.offsetLeft) || { min: 0, img: 0 };
      cols.set(fig.offsetLeft, { min: Math.max(c.min, fig.offsetWidth), img: Math.max(c.img, w) });
      const r = rows.get(fig.offsetTop) || { min: 0, img: 0, extra: 0 };
      rows.set(fig.offsetTop, {
        min: Math.max(r.min, fig.offsetHeight), img: Math.max(r.img, h),
        extra: Math.max(r.extra, fig.offsetHeight - node.offsetHeight),
      });
    }
    const total = (tracks, size) => [...tracks.values()].reduce((sum, t) => sum + size(t), 0);
    const fixedW = grid.scrollWidth - total(cols, (c) => c.min);
    const fixedH = grid.scrollHeight - total(rows, (r) => r.min);
    const width = (k) => fixedW + total(cols, (c) => Math.max(c.img * k, c.min));
    const height = (k) => fixedH + total(rows, (r) => Math.max(r.img * k + r.extra, r.min));
    const largest = (size, room) => {
      let lo = kMin;
      let hi = cap;
      if (size(hi) <= room) return hi;
      if (size(lo) > room) return lo;
      for (let i = 0; i < 32; i += 1) {
        const mid = (lo + hi) / 2;
        if (size(mid) <= room) lo = mid;
        else hi = mid;
      }
      return lo;
    };
    const page = document.documentElement;
    const pad = 28 + 2; // #wrap's padding, and a little slack for rounding
    const top = grid.getBoundingClientRect().top + window.scrollY;
    let room = page.clientWidth - pad;
    const choose = () => {
      const kW = largest(width, room);
      const kH = largest(height, window.innerHeight - top - 24);
      let k = kW;
      if (kH < k) k = Math.max(kH, Math.min(kW, FIT_FLOOR / maxEdge));
      return k;
    };
    let k = choose();
    for (let pass = 0; pass < 3; pass += 1) {
      applyScale(k);
      const over = page.scrollWidth - page.clientWidth;
      if (over <= 0 || k <= kMin) break;
      room -= over + 1;
      k = choose();
    }
    return [k, page.scrollWidth <= page.clientWidth];
  }

  // --- the large view -----------------------------------------------------------------------------------
  let opener = null; // the grid node the large view was opened from (focus goes back to it)

  function openLarge(pos, from) {
    S.large = { ...pos };
    opener = from || nodes.get(posKey(pos)) || null;
    $('large').hidden = false;
    drawLarge();
    $('large-close').focus();
  }

  function closeLarge() {
    const at = S.large ? nodes.get(posKey(S.large)) : null;
    S.large = null;
    $('large').hidden = true;
    $('large-img').removeAttribute('src');
    // Back to the image now shown large (the arrows may have moved), else to the one it was opened from.
    const back = at || (opener && opener.isConnected ? opener : null);
    opener = null;
    if (back) back.focus();
  }

  // An arrow key from `pos`: plain moves along X/Y, Shift along super X/Y (within the visible values), Alt
  // steps the first (←/→) or second (↑/↓) picked axis. Returns the new position, `redraw` when a pick
  // changed (the grid shows other cells), or null for keys that are not ours.
  function arrow(event, pos) {
    const dirs = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [-1, 1], ArrowDown: [1, 1] };
    if (!dirs[event.key] || event.ctrlKey || event.metaKey) return null;
    const [d, vertical] = dirs[event.key];
    if (event.altKey) {
      const a = pickAxes()[vertical];
      if (a === undefined) return { pos, redraw: false };
      const next = S.pick[a] + d;
      if (next >= 0 && next < A[a].values.length) {
        S.pick[a] = next;
        fixPicks(a);
        return { pos, redraw: true };
      }
      return { pos, redraw: false };
    }
    const role = event.shiftKey ? ['sx', 'sy'][vertical] : ['x', 'y'][vertical];
    const a = S.role[role];
    if (a < 0) return { pos, redraw: false };
    const values = visible(a);
    const at = values.indexOf(pos[role]);
    const next = at < 0 ? 0 : at + d;
    if (next < 0 || next >= values.length) return { pos, redraw: false };
    return { pos: { ...pos, [role]: values[next] }, redraw: false };
  }

  function moveLarge(event) {
    const step = arrow(event, S.large);
    if (!step) return false;
    S.large = { ...step.pos };
    if (step.redraw) changed();
    else drawLarge();
    return true;
  }

  // Tab and Shift+Tab cycle inside the large view (it is modal): focus never reaches the page behind it.
  function trapTab(event) {
    const inside = [...$('large').querySelectorAll('button, a[href], textarea, [tabindex="0"]')]
      .filter((node) => !node.hidden && !node.disabled && node.getClientRects().length);
    if (!inside.length) return;
    const at = inside.indexOf(document.activeElement);
    const next = event.shiftKey ? (at <= 0 ? inside.length - 1 : at - 1) : (at + 1) % inside.length;
    inside[next].focus();
  }

  function drawLarge() {
    const box = $('large');
    const i = cellAt(S.large);
    const c = i === null ? null : D.cells[i];
    box.dataset.cell = c ? c.id : '';
    box.dataset.job = c ? c.job : '';
    const where = ROLES.filter((r) => S.role[r] >= 0).map((r) => `${title(S.role[r])} ${shown(S.role[r], S.large[r])}`);
    $('large-pos').textContent = where.join(' · ');
    const img = $('large-img');
    const mark = $('large-mark');
    const heading = c ? A.map((_, a) => `${title(a)} ${shown(a, c.k[a])}`).join(' · ') : where.join(' · ');
    $('large-title').textContent = heading || (c ? c.id : '');
    const status = $('large-status');
    status.className = c && c.st === 'failed' ? 'failed' : '';
    if (!c) status.textContent = 'no image with these values';
    else if (c.st === 'ok') {
      const scores = SC.names.map((n, k) => (c.sc && c.sc[k] !== null && c.sc[k] !== undefined ? `${n} ${c.sc[k].toFixed(4)}` : null))
        .filter(Boolean);
      status.textContent = [c.id, c.s === null ? null : secondsText(c), ...scores].filter(Boolean).join(' · ');
    }
    else status.textContent = `${c.id} · ${c.st}${c.e ? ': ' + c.e : ''}`;
    if (c && c.st === 'ok' && c.i) {
      img.hidden = false;
      mark.hidden = true;
      img.onerror = () => gone(c, c.i);
      img.src = encodePath(c.i);
      img.alt = c.id;
      img.classList.toggle('small', Math.max(c.w || 0, c.h || 0) <= 256);
      $('large-open').href = encodePath(c.i);
      $('large-open').hidden = false;
    } else {
      img.hidden = true;
      img.removeAttribute('src');
      mark.hidden = false;
      img.onerror = null;
      mark.className = c ? (c.st === 'ok' ? 'noimage' : c.st) : 'none';
      mark.textContent = c ? (c.st === 'ok' ? 'no image file' : `${c.st}${c.e ? '\n\n' + c.e : ''}`) : 'no image with these values';
      $('large-open').hidden = true;
    }
    const params = $('large-params');
    params.value = c ? c.p : '';
    params.placeholder = c && c.st === 'ok' && c.i ? '(this PNG has no parameters text)' : '(no image)';
    const row = $('large-row');
    row.replaceChildren();
    if (c) {
      const axisNames = new Set(A.map((axis) => axis.name));
      D.columns.forEach((column, n) => {
        row.append(el('tr', { class: axisNames.has(column) ? 'axis' : null },
          el('th', { text: column }), el('td', { text: D.strings[c.r[n]] })));
      });
    }
  }

  function copyParams() {
    const area = $('large-params');
    const done = () => { $('large-copy').textContent = 'Copied'; setTimeout(() => { $('large-copy').textContent = 'Copy'; }, 1200); };
    const fallback = () => { area.select(); if (document.execCommand('copy')) done(); };
    if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(area.value).then(done, fallback);
    else fallback();
  }

  // --- wiring -------------------------------------------------------------------------------------------
  function draw() {
    drawCurrent();
    drawAxes();
    drawOptions();
    drawGrid();
    if (S.large) drawLarge();
  }

  document.addEventListener('keydown', (event) => {
    if (S.large) {
      if (event.key === 'Escape') closeLarge();
      else if (event.key === 'Tab') trapTab(event);
      else if (event.target === $('large-params')) return; // let the text area have its keys
      else if (!moveLarge(event)) return;
      event.preventDefault();
      return;
    }
    const node = event.target;
    const pos = node && node.closest && node.closest('#cells') ? [...nodes].find(([, n]) => n === node) : null;
    if (!pos) return;
    const here = Object.fromEntries(ROLES.map((r, n) => [r, Number(pos[0].split(',')[n])]));
    if (event.key === 'Enter' || event.key === ' ') {
      openLarge(here, node);
    } else {
      const step = arrow(event, here);
      if (!step) return;
      if (step.redraw) changed();
      const target = nodes.get(posKey(step.pos));
      if (target) target.focus();
    }
    event.preventDefault();
  });
  // Focus that gets behind the large view (a click on the page, a screen reader) is brought back into it.
  document.addEventListener('focusin', (event) => {
    if (S.large && !$('large').contains(event.target)) $('large-close').focus();
  });
  // The skip link moves focus to the grid's first image without touching the hash (the hash is the view).
  $('skip').addEventListener('click', (event) => {
    event.preventDefault();
    const first = $('cells').querySelector('[tabindex="0"]');
    if (first) { first.focus(); first.scrollIntoView({ block: 'nearest' }); }
  });
  $('notice-close').addEventListener('click', () => { problems = []; drawNotice(); });
  $('controls-box').addEventListener('toggle', () => { if (S.size === 'fit') resize(); });
  $('large').addEventListener('click', (event) => { if (event.target === $('large') || event.target === $('large-view') || event.target === $('large-img')) closeLarge(); });
  $('large-close').addEventListener('click', closeLarge);
  $('large-copy').addEventListener('click', copyParams);
  window.addEventListener('hashchange', () => { readHash(); drawNotice(); changed(); });
  let pending = 0;
  window.addEventListener('resize', () => {
    if (pending) return;
    pending = requestAnimationFrame(() => { pending = 0; if (S.size === 'fit') resize(); else stick(); });
  });

  drawHeader();
  readHash();
  drawNotice();
  changed();
  performance.mark('sweep-viewer-drawn');
  document.documentElement.dataset.ready = '1';
})();
