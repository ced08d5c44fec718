// The console's progressive enhancement: every page works without it.
// Copy buttons, the compose page's audience fields and live recipient count, the history filter, and a
// campaign's counters polled while it is being sent.

const POLL_MS = 2000;

function copyButtons() {
  const status = document.querySelector('[data-copy-status]');
  for (const button of document.querySelectorAll('[data-copy]')) {
    button.hidden = false;
    button.addEventListener('click', async () => {
      const text = document.getElementById(button.dataset.copy).textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = 'Copied';
      } catch {
        const range = document.createRange();
        range.selectNodeContents(document.getElementById(button.dataset.copy));
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        button.textContent = 'Selected: press Ctrl+C';
      }
      if (status) status.textContent = button.textContent;
      setTimeout(() => { button.textContent = 'Copy'; }, 2000);
    });
  }
}

function compose(form) {
  const output = form.querySelector('[data-recipient-count]');
  const showAudience = () => {
    const kind = form.querySelector('input[name="audience"]:checked')?.value || 'all';
    for (const block of form.querySelectorAll('[data-audience]')) block.hidden = block.dataset.audience !== kind;
  };
  let timer = null;
  let asked = 0;
  const count = async () => {
    const mine = ++asked;
    const body = new URLSearchParams(new FormData(form));
    const answer = await fetch(form.dataset.countUrl, {method: 'POST', body, credentials: 'same-origin'});
    const data = await answer.json();
    if (mine !== asked) return;
    output.textContent = 'count' in data
      ? `${data.count.toLocaleString('en')} recipient${data.count === 1 ? '' : 's'} now`
      : data.error;
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(count, 300); };
  for (const input of form.querySelectorAll('[name="audience"], [name="tag_match"], #segment, [name^="platform."]')) {
    input.addEventListener('change', () => { showAudience(); later(); });
  }
  for (const input of form.querySelectorAll('#tags, #aliases')) input.addEventListener('input', later);
  const send = form.querySelector('[data-send]');
  const schedule = form.querySelector('[name="send_date"]');
  const label = () => { send.textContent = schedule.value ? 'Schedule' : 'Send now'; };
  schedule.addEventListener('input', label);
  label();
  showAudience();
  count();
  preview(form);
}

// An <img> showing `url` if it is a picture a push may carry (http(s), .jpg, .jpeg or .png); hidden if not.
function showPicture(img, url) {
  const usable = /^https?:\/\/.+\.(jpe?g|png)(\?.*)?$/i.test(url);
  img.hidden = !usable;
  if (usable) img.src = url; else img.removeAttribute('src');
  return usable;
}

// How the notification will look, from the form as it is typed (desktop toast or mobile shade style).
function preview(form) {
  const box = form.querySelector('[data-preview]');
  if (!box) return;
  box.hidden = false;
  const value = (name) => form.elements.namedItem(name)?.value.trim() || '';
  const draw = () => {
    const toast = box.querySelector('.toast');
    toast.dataset.style = form.querySelector('input[name="preview_style"]:checked')?.value || 'desktop';
    box.querySelector('[data-preview-title]').textContent = value('payload.title') || 'Title';
    box.querySelector('[data-preview-message]').textContent = value('payload.message') || 'Your message';
    showPicture(box.querySelector('[data-preview-icon]'), value('payload.icon'));
    showPicture(box.querySelector('[data-preview-image]'), value('payload.image'));
    const buttons = box.querySelector('[data-preview-buttons]');
    buttons.replaceChildren(...[0, 1].map((i) => value(`payload.buttons[${i}].title`)).filter(Boolean).map((title) => {
      const span = document.createElement('span');
      span.textContent = title;
      return span;
    }));
  };
  form.addEventListener('input', draw);
  form.addEventListener('change', draw);
  draw();
}

function poll(section) {
  const tick = async () => {
    const answer = await fetch(section.dataset.poll, {credentials: 'same-origin'});
    if (!answer.ok) return;
    const data = await answer.json();
    for (const node of document.querySelectorAll('[data-counter]')) {
      const value = data[node.dataset.counter];
      if (value !== undefined) node.textContent = value;
    }
    for (const status of document.querySelectorAll('[data-counter="status"]')) {
      status.className = `status status-${data.status}`;
      status.textContent = data.status.charAt(0).toUpperCase() + data.status.slice(1);
    }
    for (const bar of section.querySelectorAll('[data-bar]')) {
      bar.max = Math.max(data.audience, 1);
      bar.value = data[bar.dataset.bar];
    }
    // Cancelling is for a scheduled or sending campaign: the button goes once it has finished.
    for (const live of document.querySelectorAll('[data-while-live]')) live.hidden = !data.live;
    const note = section.querySelector('[data-live-note]');
    if (note) note.textContent = data.live ? 'Updating live.' : `Updated ${new Date().toLocaleTimeString()}.`;
  };
  // Engagement (received, clicked) keeps coming after the last send: poll while the page is open.
  setInterval(() => { if (!document.hidden) tick(); }, POLL_MS);
  tick();
}

// The General tab's default icon, previewed as its URL is typed.
function iconPreview(input) {
  const figure = document.querySelector('[data-icon-preview]');
  const draw = () => {
    figure.querySelector('.muted').hidden = showPicture(figure.querySelector('img'), input.value.trim());
  };
  input.addEventListener('input', draw);
}

// A time series drawn with uPlot (vendor/uplot, loaded by the pages that have one) from the JSON at
// `data-series` ({points: [{at, KEY: n, ...}]}), its lines the keys of `data-keys`, labelled by
// `data-labels`; redrawn while the page is open and to its box's width. The page also shows the
// figures as a table.
const STROKES = ['#1f4fd1', '#15803d', '#b45309'];
// The y axis counts messages and people: whole-number steps only (uPlot would offer 0.5).
const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7];

function chart(box) {
  const keys = box.dataset.keys.split(',');
  const labels = box.dataset.labels.split(',');
  let plot = null;
  const size = () => ({width: box.clientWidth, height: Math.max(180, Math.min(280, box.clientWidth * 0.4))});
  const draw = async () => {
    const answer = await fetch(box.dataset.series, {credentials: 'same-origin'});
    if (!answer.ok) return;
    const {points} = await answer.json();
    const data = [points.map((p) => p.at), ...keys.map((key) => points.map((p) => p[key]))];
    if (points.length) for (const note of document.querySelectorAll('[data-series-empty]')) note.hidden = true;
    if (plot) { plot.setData(data); return; }
    const lines = keys.map((key, i) => ({label: labels[i], stroke: STROKES[i], width: 2, points: {show: points.length < 40}}));
    plot = new window.uPlot({
      ...size(),
      legend: {show: false},
      cursor: {show: true, points: {show: false}},
      scales: {x: {time: true}},
      axes: [{stroke: '#57606a'}, {stroke: '#57606a', grid: {stroke: '#eaeef2'}, incrs: COUNT_STEPS}],
      series: [{}, ...lines],
    }, data, box);
  };
  window.addEventListener('resize', () => { if (plot) plot.setSize(size()); });
  setInterval(() => { if (!document.hidden) draw(); }, POLL_MS * 5);
  draw();
}

copyButtons();
if (window.uPlot) for (const box of document.querySelectorAll('[data-series]')) chart(box);
const icon = document.querySelector('#default-icon');
if (icon) iconPreview(icon);
const form = document.querySelector('[data-compose]');
if (form) compose(form);
const counters = document.querySelector('[data-poll]');
if (counters) poll(counters);
for (const box of document.querySelectorAll('[data-autosubmit]')) {
  box.addEventListener('change', () => box.form.submit());
}
