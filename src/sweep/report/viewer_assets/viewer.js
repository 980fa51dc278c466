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
  const RESERVED = new Set([...ROLES, 'hide']);
  const FIT_FLOOR = 160; // fit-to-height never shrinks the largest image below this (css px); scroll instead
  const FIT_MIN = 24;
  const byKey = new Map(D.cells.map((c, i) => [c.k.join(','), i]));
  const maxEdge = Math.max(1, ...D.cells.map((c) => Math.max(c.w || 0, c.h || 0)));
  const S = {
    role: { x: -1, y: -1, sx: -1, sy: -1 },
    pick: A.map(() => 0),
    hidden: A.map(() => new Set()),
    fit: true,
    seconds: true,
    cycleAxis: -1,
    cycleSecs: 2,
    timer: null,
    large: null, // {x, y, sx, sy}: value indices of the cell shown large
  };
  const $ = (id) => document.getElementById(id);
  let sized = []; // [node, w, h] of every image-sized element, rescaled without a rebuild
  let scale = 1;

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
  const shown = (a, v) => A[a].shown[v];
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

  function readHash() {
    const pairs = location.hash.replace(/^#/, '').split('&').filter(Boolean).map((part) => {
      const at = part.indexOf('=');
      return at < 0 ? [decode(part), ''] : [decode(part.slice(0, at)), decode(part.slice(at + 1))];
    });
    S.role = { x: axisIndex(D.default.x), y: axisIndex(D.default.y), sx: -1, sy: -1 };
    S.pick = A.map(() => 0); // axes left out take their first value
    S.hidden = A.map(() => new Set());
    const given = new Map(pairs.filter(([k]) => ROLES.includes(k)));
    for (const r of ROLES) {
      if (!given.has(r)) continue;
      const a = axisIndex(given.get(r));
      if (a >= 0 || given.get(r) === '') {
        for (const other of ROLES) if (other !== r && S.role[other] === a && a >= 0) S.role[other] = -1;
        S.role[r] = a;
      }
    }
    // y left out but x took the default y: y takes the first free axis.
    if (!given.has('y') && S.role.y < 0) {
      const free = A.findIndex((_, a) => roleOf(a) === 'pick');
      if (free >= 0 && A.length > 1) S.role.y = free;
    }
    for (const [key, value] of pairs) {
      if (key === 'hide') {
        const at = value.indexOf(':');
        const a = axisIndex(value.slice(0, at));
        const v = a >= 0 ? valueIndex(a, value.slice(at + 1)) : -1;
        if (v >= 0) S.hidden[a].add(v);
      } else if (!RESERVED.has(key)) {
        const a = axisIndex(key);
        const v = a >= 0 ? valueIndex(a, value) : -1;
        if (v >= 0) S.pick[a] = v;
      }
    }
    for (const r of ROLES) {
      const a = S.role[r];
      if (a >= 0 && visible(a).length === 0) S.hidden[a].clear();
    }
  }

  function hashText() {
    const enc = encodeURIComponent;
    const parts = ['x', 'y'].map((r) => `${r}=${enc(axisName(S.role[r]))}`);
    for (const r of ['sx', 'sy']) if (S.role[r] >= 0) parts.push(`${r}=${enc(axisName(S.role[r]))}`);
    for (const a of pickAxes()) parts.push(`${enc(A[a].name)}=${enc(A[a].values[S.pick[a]])}`);
    A.forEach((axis, a) => {
      for (const v of [...S.hidden[a]].sort((p, q) => p - q)) parts.push(`hide=${enc(axis.name)}:${enc(axis.values[v])}`);
    });
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
    if (D.fixed.length) {
      $('fixed').hidden = false;
      $('fixed').replaceChildren(el('b', { text: 'fixed ' }), D.fixed.map(([k, v]) => `${k} ${v}`).join(' · '));
    }
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
        const label = shown(a, v);
        if (role === 'pick') {
          list.append(el('button', {
            type: 'button', 'data-axis': axis.name, 'data-value': value, 'aria-pressed': String(S.pick[a] === v),
            class: ok[a].has(v) ? null : 'empty', title: label, text: label,
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
          list.append(el('label', { class: on ? null : 'off', title: `${label} (untick to hide)` }, box, label));
        }
      });
      table.append(el('tr', { 'data-axis': axis.name },
        el('th', { text: axis.name }), el('td', {}, seg), el('td', { class: 'vals' }, list)));
    });
  }

  function drawOptions() {
    const box = $('options');
    box.replaceChildren();
    const size = el('div', { class: 'seg', role: 'group', 'aria-label': 'image size' });
    for (const [fit, text, tip] of [[true, 'fit to window', 'scale the grid to the window'],
      [false, 'native size', 'one image pixel per screen pixel (loads the full PNGs)']]) {
      size.append(el('button', {
        type: 'button', id: fit ? 'size-fit' : 'size-native', 'aria-pressed': String(S.fit === fit), title: tip, text,
        onclick: () => { S.fit = fit; draw(); },
      }));
    }
    box.append(el('div', { class: 'row' }, el('span', { class: 'name', text: 'size' }), size,
      el('label', {}, el('input', {
        type: 'checkbox', id: 'show-seconds', checked: S.seconds,
        onchange: (event) => { S.seconds = event.target.checked; draw(); },
      }), ' seconds')));
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
    box.append(el('div', { class: 'row hint', text: 'Click an image for its parameters; arrow keys move, Esc closes.' }));
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

  function encodePath(path) {
    return path.split('/').map(encodeURIComponent).join('/');
  }

  function source(c) {
    // Native size shows the real pixels (the PNG, loaded as it scrolls into view); fit shows thumbnails.
    return S.fit ? c.t || c.i : c.i || c.t;
  }

  function cellNode(i, pos) {
    const fig = el('figure', { class: 'cell' });
    const open = () => openLarge(pos);
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
        alt: c.id, title: 'click for the full image and its parameters', onclick: open,
      });
      img.src = encodePath(src);
      sized.push([img, w, h]);
      fig.append(img);
    } else {
      const kind = c.st === 'ok' ? 'noimage' : c.st;
      const word = c.st === 'ok' ? 'no image' : c.st;
      const mark = el('div', {
        class: `mark ${kind}`, 'data-cell': c.id, 'data-job': c.job || null, 'data-status': c.st === 'ok' ? 'noimage' : c.st,
        title: c.e || word, onclick: open,
      }, el('b', { text: word }), c.e ? el('span', { class: 'err', text: c.e }) : null);
      sized.push([mark, w, h]);
      fig.append(mark);
    }
    if (S.seconds && c.st === 'ok' && c.s !== null && c.s !== undefined) fig.append(el('figcaption', { text: `${c.s.toFixed(2)} s` }));
    return fig;
  }

  function drawGrid() {
    const grid = $('cells');
    grid.replaceChildren();
    sized = [];
    const [x, y, sx, sy] = ROLES.map((r) => S.role[r]);
    const xs = visible(x);
    const ys = visible(y);
    const sxs = visible(sx);
    const sys = visible(sy);
    grid.style.gridTemplateColumns = ['max-content', ...sxs.flatMap(() => xs.map(() => 'max-content'))].join(' ');
    const spanX = `span ${xs.length}`;
    if (x >= 0) {
      // The X axis's name above its values; the corner holds the Y axis's name, so it stays narrow.
      grid.append(el('div', { class: 'corner' }),
        el('div', { class: 'axisname', style: 'grid-column: 2 / -1', text: `${A[x].name} →` }));
    }
    if (sx >= 0) {
      grid.append(el('div', { class: 'corner' }));
      for (const v of sxs) {
        grid.append(el('div', { class: 'superhead', style: `grid-column: ${spanX}`, title: `${A[sx].name} = ${shown(sx, v)}` },
          el('span', { text: `${A[sx].name} = ${shown(sx, v)}` })));
      }
    }
    if (x >= 0) {
      grid.append(el('div', { class: 'corner', text: y >= 0 ? `${A[y].name} ↓` : '' }));
      sxs.forEach((_, b) => xs.forEach((v, j) => {
        grid.append(el('div', { class: `colhead${b > 0 && j === 0 ? ' bstart' : ''}`, title: shown(x, v) },
          el('span', { text: shown(x, v) })));
      }));
    } else if (y >= 0) {
      grid.append(el('div', { class: 'corner', text: `${A[y].name} ↓` }));
      sxs.forEach(() => grid.append(el('div')));
    }
    let count = 0;
    for (const bv of sys) {
      if (sy >= 0) grid.append(el('div', { class: 'band', text: `${A[sy].name} = ${shown(sy, bv)}` }));
      for (const yv of ys) {
        grid.append(el('div', { class: 'rowhead', title: y >= 0 ? shown(y, yv) : '', text: y >= 0 ? shown(y, yv) : '' }));
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
    applyScale(S.fit ? fitScale() : 1);
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

  // One factor for every image (relative sizes stay true): the largest that fits the grid to the window's
  // width, and to the height left below the controls when that keeps the largest image >= FIT_FLOOR px;
  // never more than twice a thumbnail. Labels and captions keep their size, so the layout's own minimum is
  // measured once with the images shrunk to nothing, then sizes are solved for without more layouts.
  function fitScale() {
    const grid = $('cells');
    if (!sized.length || grid.hidden) return 1;
    const kMin = FIT_MIN / maxEdge;
    const cap = Math.max(2 * Math.min(D.thumb_edge, maxEdge), 256) / maxEdge;
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
    const top = grid.getBoundingClientRect().top + window.scrollY;
    const kW = largest(width, $('wrap').clientWidth - 28 - 4);
    const kH = largest(height, window.innerHeight - top - 24);
    let k = kW;
    if (kH < k) k = Math.max(kH, Math.min(kW, FIT_FLOOR / maxEdge));
    // More columns than the window holds: images fill the slots their labels need anyway (the grid scrolls).
    const fill = Math.min(...[...cols.values()].map((c) => c.min / c.img));
    return Math.min(cap, Math.max(k, kW === kMin ? fill : kMin));
  }

  // --- the large view -----------------------------------------------------------------------------------
  function openLarge(pos) {
    S.large = { ...pos };
    $('large').hidden = false;
    drawLarge();
  }

  function closeLarge() {
    S.large = null;
    $('large').hidden = true;
    $('large-img').removeAttribute('src');
  }

  function moveLarge(role, step) {
    const a = S.role[role];
    if (!S.large || a < 0) return;
    const values = visible(a);
    const at = values.indexOf(S.large[role]);
    const next = at < 0 ? 0 : at + step;
    if (next < 0 || next >= values.length) return;
    S.large[role] = values[next];
    drawLarge();
  }

  function drawLarge() {
    const box = $('large');
    const i = cellAt(S.large);
    const c = i === null ? null : D.cells[i];
    box.dataset.cell = c ? c.id : '';
    box.dataset.job = c ? c.job : '';
    const where = ROLES.filter((r) => S.role[r] >= 0).map((r) => `${A[S.role[r]].name} ${shown(S.role[r], S.large[r])}`);
    $('large-pos').textContent = where.join(' · ');
    const img = $('large-img');
    const mark = $('large-mark');
    const title = c ? A.map((axis, a) => `${axis.name} ${shown(a, c.k[a])}`).join(' · ') : where.join(' · ');
    $('large-title').textContent = title || (c ? c.id : '');
    const status = $('large-status');
    status.className = c && c.st === 'failed' ? 'failed' : '';
    if (!c) status.textContent = 'no image with these values';
    else if (c.st === 'ok') status.textContent = c.s === null ? c.id : `${c.id} · ${c.s.toFixed(2)} s`;
    else status.textContent = `${c.id} · ${c.st}${c.e ? ': ' + c.e : ''}`;
    if (c && c.st === 'ok' && c.i) {
      img.hidden = false;
      mark.hidden = true;
      img.src = encodePath(c.i);
      img.alt = c.id;
      img.classList.toggle('small', Math.max(c.w || 0, c.h || 0) <= 256);
      $('large-open').href = encodePath(c.i);
      $('large-open').hidden = false;
    } else {
      img.hidden = true;
      img.removeAttribute('src');
      mark.hidden = false;
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
    drawAxes();
    drawOptions();
    drawGrid();
    if (S.large) drawLarge();
  }

  document.addEventListener('keydown', (event) => {
    if (!S.large || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.target === $('large-params') && event.key !== 'Escape') return; // let the text area have its keys
    const moves = { ArrowLeft: ['x', -1], ArrowRight: ['x', 1], ArrowUp: ['y', -1], ArrowDown: ['y', 1] };
    if (event.key === 'Escape') closeLarge();
    else if (moves[event.key]) moveLarge(...moves[event.key]);
    else return;
    event.preventDefault();
  });
  $('large').addEventListener('click', (event) => { if (event.target === $('large') || event.target === $('large-view') || event.target === $('large-img')) closeLarge(); });
  $('large-close').addEventListener('click', closeLarge);
  $('large-copy').addEventListener('click', copyParams);
  window.addEventListener('hashchange', () => { readHash(); changed(); });
  let pending = 0;
  window.addEventListener('resize', () => {
    if (!S.fit || pending) return;
    pending = requestAnimationFrame(() => { pending = 0; applyScale(fitScale()); });
  });

  drawHeader();
  readHash();
  changed();
  performance.mark('sweep-viewer-drawn');
  document.documentElement.dataset.ready = '1';
})();
