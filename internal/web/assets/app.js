// tokengate pages: dialogs, background forms, the clipboard, dates in the
// reader's locale and time zone, and the label rules as the user types.
// No framework and no inline script (the pages' CSP forbids it).
'use strict';

(function () {
  var body = document.body;
  var msg = function (name) { return body.dataset['msg' + name] || ''; };
  var lang = document.documentElement.lang || 'en';

  // Dates and times: the server writes UTC; show them as the reader lives.
  function localTimes(root) {
    var dt = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' });
    var d = new Intl.DateTimeFormat(lang, { dateStyle: 'medium' });
    root.querySelectorAll('time[datetime]').forEach(function (el) {
      var t = new Date(el.getAttribute('datetime'));
      if (isNaN(t)) return;
      el.textContent = (el.hasAttribute('data-date') ? d : dt).format(t);
      el.title = t.toISOString();
    });
  }

  // Dialogs: open from a button, give focus back to it when closed.
  var opener = new WeakMap();
  // A dialog shared by the rows of a table takes the row's data from the
  // button that opened it: data-action (the forms' address), and the
  // values named by [data-from] and [data-when] inside the dialog.
  function prepare(dialog, from) {
    var d = (from && from.dataset) || {};
    if (d.action === undefined) return;
    // setAttribute, not f.action: a field named "action" would shadow it.
    dialog.querySelectorAll('form[data-action-suffix]').forEach(function (f) { f.setAttribute('action', d.action + f.dataset.actionSuffix); });
    dialog.querySelectorAll('[data-from]').forEach(function (el) {
      var v = d[el.dataset.from] || '';
      if (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA') {
        el.value = v;
        if (el.hasAttribute('data-label-check')) el.dataset.labelSelf = v;
      } else {
        el.textContent = v;
      }
    });
    dialog.querySelectorAll('[data-when]').forEach(function (el) {
      var kv = el.dataset.when.split('=');
      el.hidden = (d[kv[0]] || '') !== kv[1];
    });
  }
  function open(dialog, from) {
    if (!dialog || dialog.open) return;
    prepare(dialog, from);
    // A dialog opened from a row's menu closes the menu; the focus goes
    // back to the menu's button (the item is hidden with the menu).
    var menu = from && from.closest && from.closest('details.menu');
    if (menu) { menu.open = false; from = menu.querySelector('summary') || from; }
    opener.set(dialog, from || document.activeElement);
    dialog.querySelectorAll('[data-error], [data-error-for]').forEach(function (e) { e.hidden = true; e.textContent = ''; });
    dialog.showModal();
    var first = dialog.querySelector('[autofocus]') || dialog.querySelector('input:not([type=hidden]), select, textarea, button');
    if (first) first.focus();
  }
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest('[data-open]');
    if (b) { open(document.getElementById(b.dataset.open), b); return; }
    var c = ev.target.closest('[data-close]');
    if (c) { var d = c.closest('dialog'); if (d) d.close(); }
  });
  document.querySelectorAll('dialog').forEach(function (d) {
    d.addEventListener('close', function () {
      if (d.hasAttribute('data-reload-on-close')) {
        var v = d.querySelector('.secret-value');
        if (v) v.value = ''; // the secret leaves the page with the dialog
        location.reload();
        return;
      }
      var o = opener.get(d);
      if (o && document.contains(o)) o.focus();
    });
  });

  // The label rules of the server (package label): trimmed, NFC, at most
  // 20 characters, not empty, unique among the user's labels ignoring case.
  function labelKey(s) { return s.trim().normalize('NFC').toLowerCase(); }
  function labelProblem(input) {
    var v = input.value.trim().normalize('NFC');
    if (v === '') return msg('LabelEmpty');
    if (Array.from(v).length > 20) return msg('LabelTooLong');
    var taken = [];
    try { taken = JSON.parse(input.dataset.labels || '[]') || []; } catch (e) { taken = []; }
    var self = input.dataset.labelSelf;
    var key = labelKey(v);
    if ((self === undefined || labelKey(self) !== key) && taken.some(function (l) { return labelKey(l) === key; })) {
      return msg('LabelTaken');
    }
    return '';
  }
  function showFieldError(form, field, text) {
    var el = form.querySelector('[data-error-for="' + field + '"]');
    var input = form.querySelector('[name="' + field + '"]');
    if (input) {
      if (text) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
      if (el && el.id === '') el.id = (input.id || field) + '-error';
      if (el && text) {
        var ids = (input.getAttribute('aria-describedby') || '').split(' ').filter(function (x) { return x && x !== el.id; });
        ids.push(el.id);
        input.setAttribute('aria-describedby', ids.join(' '));
      }
    }
    if (!el) return false;
    el.textContent = text;
    el.hidden = !text;
    return true;
  }
  document.querySelectorAll('[data-label-check]').forEach(function (input) {
    var all = [];
    var list = document.querySelector('#create-label');
    if (list && input !== list) input.dataset.labels = list.dataset.labels;
    input.addEventListener('input', function () {
      showFieldError(input.form, 'label', labelProblem(input));
    });
  });

  // Expiry: a date field when "a date" is chosen; the browser's time zone
  // goes with the form so the date ends where the user lives.
  document.querySelectorAll('[data-timezone]').forEach(function (el) {
    try { el.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (e) { el.value = ''; }
  });
  document.querySelectorAll('select[data-expiry]').forEach(function (sel) {
    var box = sel.form.querySelector('[data-expiry-date]');
    var date = box && box.querySelector('input[type=date]');
    if (date) {
      var t = new Date();
      var md = '-' + String(t.getMonth() + 1).padStart(2, '0') + '-' + String(t.getDate()).padStart(2, '0');
      date.min = t.getFullYear() + md;
      date.max = (t.getFullYear() + 99) + md; // the server allows 100 years at most
    }
    var sync = function () { if (box) box.hidden = sel.value !== 'date'; };
    sel.addEventListener('change', function () { sync(); if (sel.value === 'date' && date) date.focus(); });
    sync();
  });

  // Copy: the clipboard API where the page may use it, else the old way.
  function copyFrom(input) {
    var text = input.value;
    var fallback = function () {
      input.focus();
      input.select();
      var ok = false;
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      return ok ? Promise.resolve() : Promise.reject(new Error('copy refused'));
    };
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(fallback);
    }
    return fallback();
  }
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest('[data-copy]');
    if (!b) return;
    var input = document.getElementById(b.dataset.copy);
    var dialog = b.closest('dialog');
    var place = dialog || b.closest('section, form'); // where its "Copied" goes
    var status = place && place.querySelector('.copy-status');
    copyFrom(input).then(function () {
      if (status) status.textContent = msg('Copied');
      if (dialog && !b.hasAttribute('data-copy-stay')) dialog.close();
    }, function () {
      if (status) status.textContent = msg('CopyFailed');
      input.focus();
      input.select();
    });
  });
  // A secret is shown masked (seed 000); "Show" reveals it.
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest('[data-reveal]');
    if (!b) return;
    var input = document.getElementById(b.dataset.reveal);
    var shown = input.classList.toggle('masked') === false;
    b.setAttribute('aria-pressed', String(shown));
    b.textContent = shown ? msg('Hide') : msg('Show');
  });
  document.querySelectorAll('.secret-value').forEach(function (input) {
    input.addEventListener('focus', function () { input.select(); });
  });

  // Background forms: one request at a time per form (a double click sends
  // one), the server's message next to its field, the dialog kept as typed.
  document.querySelectorAll('form[data-fetch]').forEach(function (form) {
    var busy = false;
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      if (busy) return;
      var labelInput = form.querySelector('[data-label-check]');
      if (labelInput) {
        var p = labelProblem(labelInput);
        if (p) { showFieldError(form, 'label', p); labelInput.focus(); return; }
      }
      var expiry = form.querySelector('select[data-expiry]');
      var date = form.querySelector('input[name=expires_date]');
      if (expiry && expiry.value === 'date' && date && !date.value) {
        showFieldError(form, 'expires_date', msg('Date'));
        date.focus();
        return;
      }
      form.querySelectorAll('[data-error-for]').forEach(function (e) { showFieldError(form, e.dataset.errorFor, ''); });
      var general = form.querySelector('[data-error]');
      if (general) { general.hidden = true; general.textContent = ''; }
      busy = true;
      var buttons = form.querySelectorAll('button[type=submit]');
      buttons.forEach(function (b) { b.disabled = true; b.setAttribute('aria-busy', 'true'); });
      var done = function () { busy = false; buttons.forEach(function (b) { b.disabled = false; b.removeAttribute('aria-busy'); }); };
      var post = function () {
        return fetch(form.getAttribute('action'), {
          method: 'POST',
          body: new URLSearchParams(new FormData(form)),
          headers: { 'Accept': 'application/json', 'X-Page': location.pathname },
          credentials: 'same-origin',
          cache: 'no-store'
        }).then(function (res) {
          return res.json().catch(function () { return {}; }).then(function (data) { return { res: res, data: data }; });
        });
      };
      post().then(function (r) {
        // Signed in again in another tab: this page's CSRF token is the old
        // session's. Take the new one and send once more, so that what was
        // typed is not lost.
        if (r.res.status === 403 && r.data.error === 'csrf') {
          return refreshCSRF().then(function (res) {
            if (res === 'same') return post();
            if (res === 'other') return { res: r.res, data: { error: 'csrf', message: msg('OtherUser') } };
            return r;
          });
        }
        return r;
      }).then(function (r) {
        if (r.res.ok) {
          succeeded(form, r.data);
          if (form.dataset.done !== 'secret') return; // the page reloads
          done();
          return;
        }
        done();
        failed(form, r.data);
      }, function () {
        done();
        failed(form, { message: msg('Network') });
      });
    });
  });

  // refreshCSRF asks for the current session's CSRF token. Only when that
  // session is this page's user does it put the token in the page's forms
  // ('same'); another user signed in since ('other') must not act from a
  // page loaded for someone else.
  function refreshCSRF() {
    var url = body.dataset.csrfUrl;
    if (!url) return Promise.resolve('none');
    return fetch(url, { headers: { 'Accept': 'application/json' }, credentials: 'same-origin', cache: 'no-store' })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (data) {
        if (!data || !data.csrf) return 'none';
        if (data.user !== body.dataset.user) return 'other';
        document.querySelectorAll('input[name=csrf]').forEach(function (i) { i.value = data.csrf; });
        return 'same';
      }, function () { return 'none'; });
  }

  function succeeded(form, data) {
    var how = form.dataset.done;
    if (how === 'secret') {
      var own = form.closest('dialog');
      var secretDialog = document.getElementById(form.dataset.secretDialog || 'secret-dialog');
      var field = secretDialog.querySelector('.secret-value');
      field.value = data.token || data.client_secret || '';
      field.classList.add('masked');
      secretDialog.querySelectorAll('[data-reveal]').forEach(function (b) { b.setAttribute('aria-pressed', 'false'); b.textContent = msg('Show'); });
      secretDialog.querySelectorAll('[data-fill]').forEach(function (el) { el.value = data[el.dataset.fill] || ''; });
      form.reset();
      if (own) own.close();
      open(secretDialog, null);
      return;
    }
    if (how && how.charAt(0) === '/') { location.assign(how); return; }
    location.reload();
  }

  function failed(form, data) {
    var text = data.message || msg('Network');
    if (data.field && showFieldError(form, data.field, text)) {
      var input = form.querySelector('[name="' + data.field + '"]');
      if (input) input.focus();
      return;
    }
    var general = form.querySelector('[data-error]');
    if (!general) { window.alert(text); return; }
    general.textContent = text;
    if (data.signin) {
      var a = document.createElement('a');
      a.href = data.signin;
      // The message says so: in a new tab, so that this form is kept.
      a.target = '_blank';
      a.rel = 'noopener';
      a.textContent = ' ' + msg('Signin');
      general.appendChild(a);
    }
    general.hidden = false;
  }

  // Forms that ask before they act (data-requires names a check box).
  document.querySelectorAll('[data-requires]').forEach(function (button) {
    var box = document.getElementById(button.dataset.requires);
    if (!box) return;
    var sync = function () { button.disabled = !box.checked; };
    box.addEventListener('change', sync);
    sync();
  });

  localTimes(document);
  // Tests (and anyone curious) can tell the page is wired up.
  document.documentElement.dataset.ready = '1';
})();
