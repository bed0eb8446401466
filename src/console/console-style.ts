/** The console's stylesheet: system fonts, readable at laptop widths, visible keyboard focus. */
export const CONSOLE_STYLE = `
:root{color-scheme:light;--fg:#1b1f24;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--accent:#0b57d0;--bad:#b42318;--ok:#067647;--warn:#b54708}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:#fff}
header{display:flex;gap:1.5rem;align-items:center;padding:.6rem 1.25rem;border-bottom:1px solid var(--line);background:var(--bg)}
header strong{font-size:15px}
nav{display:flex;gap:1rem}
nav a{color:var(--fg);text-decoration:none;padding:.2rem .4rem;border-radius:4px}
nav a[aria-current=page]{background:#dde7f7;color:var(--accent)}
header .who{margin-left:auto;color:var(--muted)}
main:focus{outline:none}
main{padding:1rem 1.25rem;max-width:1280px}
h1{font-size:20px;margin:.2rem 0 1rem}
h2{font-size:16px;margin:1.5rem 0 .5rem}
a{color:var(--accent)}
:focus-visible{outline:3px solid #7aa7f0;outline-offset:1px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg);font-weight:600;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pos{color:var(--ok)}.neg{color:var(--bad)}
.badge{display:inline-block;padding:0 .4rem;border-radius:9px;font-size:12px;background:#eaeef2}
.badge.failed,.badge.unmapped{background:#fee4e2;color:var(--bad)}
.badge.held,.badge.unmatched{background:#fef0c7;color:var(--warn)}
.badge.credited,.badge.refunded{background:#dcfae6;color:var(--ok)}
.balance{font-size:36px;font-weight:600;font-variant-numeric:tabular-nums}
.live{color:var(--ok);font-size:12px;margin-left:.5rem}
.row{display:flex;gap:2rem;flex-wrap:wrap;align-items:flex-start}
form.inline{display:flex;gap:.5rem;flex-wrap:wrap;align-items:end}
label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:.15rem}
input,select,textarea,button{font:inherit;padding:.35rem .5rem;border:1px solid var(--line);border-radius:6px;color:var(--fg);background:#fff}
button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
button.secondary{background:#fff;color:var(--accent)}
button:disabled{opacity:.5;cursor:default}
td pre{max-width:560px}
pre{background:var(--bg);padding:.5rem;overflow:auto;max-height:320px;font-size:12px;margin:.3rem 0}
.notice{padding:.6rem .8rem;border-radius:6px;background:#eef4ff;margin:.5rem 0}
.notice.error{background:#fee4e2;color:var(--bad)}
.muted{color:var(--muted)}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1rem}
.chart{border:1px solid var(--line);border-radius:8px;padding:.6rem .8rem}
.chart h2{margin:0 0 .3rem}
.chart .now{font-size:22px;font-weight:600}
.chart svg{width:100%;height:70px;display:block}
.story{max-width:520px}
`;
