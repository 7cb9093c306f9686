// The quorumkv console's live updates: every 2 s, fetch the page's live
// part (/console/live, HTML rendered and escaped by the node's Go
// templates) and swap it in. No framework, nothing from another origin;
// the page works without this file, it only stops updating.
'use strict';

(function () {
  const intervalMs = 2000;
  const conn = document.getElementById('conn');
  let polls = 0;
  let lastOK = null;

  function say(text, stale) {
    if (!conn) return;
    conn.textContent = text;
    conn.className = stale ? 'stale' : 'muted';
  }

  async function poll() {
    try {
      const resp = await fetch('/console/live', { cache: 'no-store', credentials: 'same-origin' });
      if (!resp.ok) {
        throw new Error('the node answered ' + resp.status);
      }
      // DOMParser builds an inert document: nothing in it runs.
      const doc = new DOMParser().parseFromString(await resp.text(), 'text/html');
      const next = doc.getElementById('live');
      const cur = document.getElementById('live');
      if (!next || !cur) {
        throw new Error('the answer has no live part');
      }
      cur.replaceWith(document.importNode(next, true));
      polls++;
      lastOK = next.dataset.at || '';
      document.body.dataset.polls = String(polls);
      say('Live: refreshed every 2 s; last update rendered at ' + lastOK + '.', false);
    } catch (err) {
      say('Not updating: ' + err.message + (lastOK ? '; the figures below are from ' + lastOK : '') + '.', true);
    }
    setTimeout(poll, intervalMs);
  }

  setTimeout(poll, intervalMs);
})();
