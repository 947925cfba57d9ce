/**
 * The dashboard's style sheet and its one small script, served by the app itself: no CDN, no
 * build step. The script only adds copy buttons' clipboard writes; every page reads and works
 * without it.
 */

export const STYLE = `
:root{--fg:#1d2430;--muted:#5b6575;--line:#d9dee6;--bg:#f6f7f9;--card:#fff;--accent:#1f5fbf;
--ok:#1e7b45;--warn:#9a6200;--bad:#b42318;--info:#4a5a78;font-family:system-ui,-apple-system,
"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
[hidden]{display:none!important}*{box-sizing:border-box}body{margin:0;font-size:15px;line-height:1.45}
a{color:var(--accent)}header.top{background:#16202e;color:#fff;padding:.6rem 1rem;display:flex;
flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center}header.top a{color:#dbe6f7;text-decoration:none}
header.top a[aria-current=page]{color:#fff;font-weight:600;border-bottom:2px solid #7fb0ff}
header.top .brand{font-weight:700;color:#fff;margin-right:.6rem}header.top nav{display:flex;
flex-wrap:wrap;gap:.2rem 1rem}header.top .who{margin-left:auto;display:flex;gap:.6rem;
align-items:center;font-size:.9rem;color:#c7d2e3}header.top .who form{display:inline}
header.top select,header.top button{font-size:.85rem}
main{max-width:1180px;margin:0 auto;padding:1rem}h1{font-size:1.45rem;margin:.4rem 0 1rem}
h2{font-size:1.1rem;margin:1.4rem 0 .6rem}.card{background:var(--card);border:1px solid var(--line);
border-radius:8px;padding:1rem;margin-bottom:1rem}.grid{display:grid;gap:1rem;
grid-template-columns:repeat(auto-fit,minmax(280px,1fr))}
.table-wrap{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.45rem .55rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);white-space:nowrap}td.num,th.num{text-align:right}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.86rem;
word-break:break-all}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:999px;font-size:.8rem;
font-weight:600;background:#e8ecf2;color:var(--info);white-space:nowrap}
.badge.delivered,.badge.active,.badge.verified,.badge.ok{background:#dcf3e5;color:var(--ok)}
.badge.deferred,.badge.throttled,.badge.pending,.badge.queued{background:#fdf0d5;color:var(--warn)}
.badge.bounced,.badge.suspended,.badge.failed,.badge.complained,.badge.revoked,.badge.missing,
.badge.mismatch{background:#fde2e0;color:var(--bad)}
form.inline{display:inline}label{display:block;font-weight:600;font-size:.88rem;margin:.5rem 0 .2rem}
input[type=text],input[type=password],input[type=search],input[type=url],input[type=number],
input[type=email],input[type=datetime-local],select,textarea{width:100%;padding:.45rem .5rem;
border:1px solid #b9c2cf;border-radius:6px;font:inherit;background:#fff}
fieldset{border:1px solid var(--line);border-radius:6px;margin:.7rem 0;padding:.3rem .8rem .6rem}
legend{font-weight:600;font-size:.88rem;padding:0 .3rem}.checks{display:grid;gap:0 1rem;
grid-template-columns:repeat(auto-fill,minmax(150px,1fr))}
.check{display:flex;gap:.4rem;align-items:center;font-weight:400}.check input{width:auto}
.fields{display:grid;gap:0 1rem;grid-template-columns:repeat(auto-fit,minmax(190px,1fr))}
button,.button{display:inline-block;padding:.42rem .85rem;border-radius:6px;border:1px solid
var(--accent);background:var(--accent);color:#fff;font:inherit;font-size:.9rem;cursor:pointer;
text-decoration:none;margin:.2rem .2rem .2rem 0}button.secondary,.button.secondary{background:#fff;
color:var(--accent)}button.danger{background:var(--bad);border-color:var(--bad)}
.gap{margin-left:.35em}.actions{margin-top:.8rem}.muted{color:var(--muted)}.small{font-size:.85rem}
.notice{padding:.7rem 1rem;border-radius:8px;margin-bottom:1rem;border:1px solid}
.notice.ok{background:#eaf7ef;border-color:#b5e0c4}.notice.error{background:#fdecea;
border-color:#f3b8b2}.notice.warn{background:#fff6e0;border-color:#f0d48f}
.secret{background:#fffbe6;border:2px dashed #d9a400;padding:1rem;border-radius:8px;
margin-bottom:1rem}.card>h2:first-child,form.card>h2,.secret>h2:first-child{margin-top:0}
td .copy{min-width:13rem}
.copy{display:flex;gap:.4rem;align-items:flex-start}.copy code{flex:1;background:#f2f4f7;
padding:.35rem .45rem;border-radius:4px}.copy button{margin:0;padding:.2rem .55rem;font-size:.8rem}
.timeline{list-style:none;padding:0;margin:0}.timeline li{border-left:3px solid var(--line);
padding:.3rem 0 .6rem .8rem;margin-left:.3rem}.timeline li.delivered{border-color:var(--ok)}
.timeline li.bounced,.timeline li.complained{border-color:var(--bad)}
.timeline li.deferred{border-color:var(--warn)}
.kpi>span{display:block}.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(120px,1fr));gap:.6rem}
.kpi{background:#f3f6fa;border-radius:6px;padding:.5rem .7rem}.kpi b{display:block;font-size:1.3rem}
svg.chart{width:100%;height:auto;max-height:260px}.legend{display:flex;flex-wrap:wrap;gap:.8rem;
font-size:.85rem}.legend i{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;
margin-right:.3rem;vertical-align:-1px}
.switch-label{display:inline;color:#c7d2e3;font-weight:400}svg.swatch{margin-right:.3rem;
vertical-align:-1px}.signin{max-width:420px;margin:3rem auto}
.pager{display:flex;gap:.6rem;margin-top:.8rem}
@media (max-width:640px){main{padding:.6rem}header.top .who{margin-left:0}
table.stack thead{display:none}table.stack tr{display:block;border-bottom:1px solid var(--line);
padding:.3rem 0}table.stack td{display:block;position:relative;border:0;
padding:.15rem .2rem .15rem 7.2rem;min-height:1.6rem;overflow-wrap:anywhere}
table.stack td,table.stack td.num{text-align:left}table.stack td::before{content:attr(data-label);font-weight:600;color:var(--muted);
position:absolute;left:.2rem;top:.15rem;width:6.6rem;
min-width:6.5rem}table.stack td .copy{min-width:0}}
`;

/** Copy buttons: `<button data-copy="text">`; harmless where the clipboard is unavailable. */
export const SCRIPT = `
document.addEventListener("click", function (e) {
  var b = e.target.closest ? e.target.closest("button[data-copy]") : null;
  if (!b || !navigator.clipboard) return;
  e.preventDefault();
  navigator.clipboard.writeText(b.getAttribute("data-copy")).then(function () {
    var t = b.textContent; b.textContent = "Copied"; setTimeout(function () { b.textContent = t; }, 1200);
  });
});
document.querySelectorAll("button[data-copy]").forEach(function (b) { b.hidden = false; });
`;
