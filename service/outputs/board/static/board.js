// motcua board: fetches /api/board every few seconds and redraws in place (no reload, no
// flicker: cells change only when their text changes). Vietnamese by default, English on
// request; colours always come with a word saying the same thing.
"use strict";

const I18N = {
  vi: {
    skip: "Đến danh sách hồ sơ cần xử lý",
    title: "Tình hình giải quyết hồ sơ",
    updated: "Cập nhật lúc",
    today: "Hôm nay",
    period: "Kỳ số liệu:",
    month: "Từ đầu tháng",
    todayButton: "Hôm nay",
    langButton: "English",
    langLabel: "Switch to English",
    agencies: "Theo cơ quan (sở, ngành)",
    agenciesCaption: "Số hồ sơ và tỷ lệ theo cơ quan; các số “hiện tại” là tình trạng lúc cập nhật.",
    colAgency: "Cơ quan",
    colReceivedToday: "Tiếp nhận hôm nay",
    colReceivedMonth: "Tiếp nhận từ đầu tháng",
    colResolved: "Đã giải quyết",
    colEarly: "Trước hạn",
    colTimely: "Trước và đúng hạn",
    colLate: "Trễ hạn",
    colInProgress: "Đang giải quyết (hiện tại)",
    colOverdue: "Quá hạn (hiện tại)",
    colNoDue: "Chưa có hạn (hiện tại)",
    colOverdueShare: "Tỷ lệ quá hạn",
    colNoApology: "Quá hạn chưa có văn bản xin lỗi",
    colScore: "Điểm tiến độ QĐ 766 (/20)",
    colOnline: "Trực tuyến",
    colPostal: "Bưu chính công ích",
    total: "Toàn trung tâm",
    noTotal: "Chưa có tổng: thiếu số liệu của một số phân vùng",
    met: "đạt",
    missed: "chưa đạt",
    queue: "Hồ sơ cần xử lý ngay",
    qNoApology: "Quá hạn, chưa có văn bản xin lỗi",
    qApology: "Quá hạn, đã xin lỗi và hẹn lại",
    qDueSoon: "Sắp đến hạn (đến hết ngày làm việc kế tiếp)",
    count: (shown, total) => total > shown ? `(${shown} / ${total} hồ sơ)` : `(${total} hồ sơ)`,
    none: "Không có hồ sơ nào.",
    hRank: "#",
    hDossier: "Mã hồ sơ",
    hAgency: "Cơ quan",
    hProcedure: "Thủ tục",
    hReceived: "Tiếp nhận",
    hDue: "Hạn trả",
    hOverdueDays: "Quá hạn (ngày làm việc)",
    hRemainingDays: "Còn lại (ngày làm việc)",
    hNewDue: "Hẹn lại",
    hSupplements: "Lần bổ sung",
    hJson: "Dữ liệu",
    json: "JSON",
    jsonLabel: (id) => `JSON của nhóm hồ sơ chứa ${id}`,
    legend: (t) => `Chỉ tiêu: quá hạn dưới ${t.overdue}; trước và đúng hạn ${t.onTime}; trước hạn từ ${t.early}; trực tuyến từ ${t.online}; bưu chính từ ${t.postal}. Tỷ lệ giải quyết tính trên hồ sơ đã giải quyết trong kỳ; tỷ lệ quá hạn tính trên hồ sơ đang giải quyết; trực tuyến, bưu chính tính trên hồ sơ tiếp nhận trong kỳ. Điểm QĐ 766 = 20 × (trước hạn + đúng hạn + đang trong hạn) / (đã và đang giải quyết).`,
    incomplete: (missing, workers) => `Số liệu CHƯA ĐẦY ĐỦ: thiếu phân vùng ${missing}${workers}. Các số dưới đây chỉ là một phần, không có tổng.`,
    twice: (parts) => `Phân vùng ${parts} được hai worker cùng trả lời (đang chia lại phân vùng?): số liệu có thể bị tính hai lần, không có tổng.`,
    unexpected: (parts, expected) => `Phân vùng ${parts} vượt quá số phân vùng dự kiến (${expected}, MOTCUA_PARTITIONS): topic có nhiều phân vùng hơn, có thể thiếu số liệu mà không biết, không có tổng.`,
    workersDown: (list) => `; worker không trả lời: ${list}`,
    workerMissing: (list) => `Cảnh báo: ${list}. Các phân vùng của nó đã do worker khác đảm nhận: số liệu vẫn đầy đủ.`,
    stale: (time) => `Số liệu CŨ: lần cập nhật cuối lúc ${time}; đang thử lại.`,
    unreachable: "Không kết nối được bảng theo dõi; đang thử lại.",
    workerStatus: { ok: "sẵn sàng", unreachable: "không trả lời", not_ready: "chưa sẵn sàng", moving: "đang chia lại phân vùng", error: "lỗi" },
    workersLine: "Worker:",
    partitionsWord: "phân vùng",
    footer: "Số liệu từ các worker motcua; hồ sơ chỉ gồm mã và thời điểm.",
    departments: "Hồ sơ trễ hạn đang nằm ở đâu (cơ quan, phòng ban)",
    departmentsCaption: "Hồ sơ quá hạn theo nơi đang giữ (bước xử lý đang mở), nhiều nhất trước; bước xử lý theo cơ quan và phòng ban chịu trách nhiệm.",
    colDepartment: "Phòng ban",
    colHeld: "Hồ sơ quá hạn đang giữ (hiện tại)",
    colStepsOverdue: "Bước xử lý quá hạn (hiện tại)",
    colStepsLate: "Bước hoàn thành trễ hạn",
    colStepsOnTime: "Bước hoàn thành đúng hạn",
    noDepartments: "Chưa có bước xử lý nào quá hạn hay đã hoàn thành.",
    departmentNone: "(không ở bước xử lý nào)",
    departmentOther: "khác (không có trong danh mục)",
    hHeld: "Phòng ban đang giữ",
    indexTitle: "Chỉ số QĐ 766 từ đầu tháng",
    indexCaption: "Mỗi cơ quan hai dòng. Dòng đầu: điểm Cổng Dịch vụ công quốc gia sẽ chấm (mẫu số của Cổng, mẫu số rỗng là 0 điểm), để so với trang của Cổng. Dòng sau: điểm motcua chỉ tính trên hồ sơ đã báo đủ dữ kiện.",
    notMeasuredTitle: "Chưa đo ở đây (cần danh mục thủ tục hoặc dữ liệu khác)",
    notMeasured: "chưa đo ở đây",
    colRule: "Cách tính",
    rulePortal: "Cổng DVCQG (cách chấm của Cổng)",
    ruleMotcua: "motcua: dữ kiện đã biết",
    unverified: (refs) => `⚠ ${refs}: trọng số chưa kiểm chứng`,
    colIndexTotal: (refs) => refs ? `Tổng so sánh với Cổng (/50, không tính ${refs})` : "Tổng so sánh với Cổng (/50)",
    groups: { transparency: "Công khai, minh bạch", timeliness: "Tiến độ giải quyết", online_service: "Dịch vụ trực tuyến", online_payment: "Thanh toán trực tuyến", digitisation: "Số hóa hồ sơ", satisfaction: "Mức độ hài lòng" },
    points: "điểm",
  },
  en: {
    skip: "Skip to the dossiers to act on",
    title: "Dossier processing at the center",
    updated: "Updated at",
    today: "Today",
    period: "Figures for:",
    month: "Month to date",
    todayButton: "Today",
    langButton: "Tiếng Việt",
    langLabel: "Chuyển sang tiếng Việt",
    agencies: "By agency",
    agenciesCaption: "Dossiers and shares by agency; “now” figures are the state at the last update.",
    colAgency: "Agency",
    colReceivedToday: "Received today",
    colReceivedMonth: "Received month to date",
    colResolved: "Resolved",
    colEarly: "Early",
    colTimely: "Early or on time",
    colLate: "Late",
    colInProgress: "In progress (now)",
    colOverdue: "Overdue (now)",
    colNoDue: "No due (now)",
    colOverdueShare: "Overdue share",
    colNoApology: "Overdue without apology letter",
    colScore: "QĐ 766 timeliness score (/20)",
    colOnline: "Online",
    colPostal: "Postal",
    total: "Whole center",
    noTotal: "No total: some partitions are missing",
    met: "met",
    missed: "below target",
    queue: "Dossiers to act on now",
    qNoApology: "Overdue, no apology letter",
    qApology: "Overdue, apology sent with a new appointment",
    qDueSoon: "Due soon (by the end of the next working day)",
    count: (shown, total) => total > shown ? `(${shown} of ${total} dossiers)` : `(${total} dossiers)`,
    none: "No dossiers.",
    hRank: "#",
    hDossier: "Dossier",
    hAgency: "Agency",
    hProcedure: "Procedure",
    hReceived: "Received",
    hDue: "Due",
    hOverdueDays: "Overdue (working days)",
    hRemainingDays: "Remaining (working days)",
    hNewDue: "New appointment",
    hSupplements: "Supplements",
    hJson: "Data",
    json: "JSON",
    jsonLabel: (id) => `JSON of the group holding ${id}`,
    legend: (t) => `Targets: overdue below ${t.overdue}; early or on time ${t.onTime}; early at least ${t.early}; online at least ${t.online}; postal at least ${t.postal}. Resolution shares are of dossiers resolved in the period; the overdue share is of dossiers in progress; online and postal shares are of dossiers received in the period. QĐ 766 score = 20 × (early + on time + in progress within the due) / (resolved + in progress).`,
    incomplete: (missing, workers) => `INCOMPLETE figures: partitions ${missing} are missing${workers}. The figures below are partial; there is no total.`,
    twice: (parts) => `Partitions ${parts} are answered by two workers (a rebalance?): figures may be counted twice; there is no total.`,
    unexpected: (parts, expected) => `Partitions ${parts} are beyond the ${expected} expected (MOTCUA_PARTITIONS): the topic has more partitions, so some may be missing unseen; there is no total.`,
    workersDown: (list) => `; workers not answering: ${list}`,
    workerMissing: (list) => `Warning: ${list}. Other workers hold its partitions: the figures are complete.`,
    stale: (time) => `STALE figures: last updated at ${time}; retrying.`,
    unreachable: "Cannot reach the board server; retrying.",
    workerStatus: { ok: "ready", unreachable: "not answering", not_ready: "not ready", moving: "rebalancing", error: "error" },
    workersLine: "Workers:",
    partitionsWord: "partitions",
    footer: "Figures from the motcua workers; dossiers carry only codes and times.",
    departments: "Where late dossiers sit (agency, department)",
    departmentsCaption: "Overdue dossiers by where they sit now (their open processing step), most first; processing steps by the agency and department responsible.",
    colDepartment: "Department",
    colHeld: "Overdue dossiers held (now)",
    colStepsOverdue: "Steps overdue (now)",
    colStepsLate: "Steps completed late",
    colStepsOnTime: "Steps completed on time",
    noDepartments: "No processing step is overdue or completed yet.",
    departmentNone: "(in no processing step)",
    departmentOther: "other (not in the units file)",
    hHeld: "Held by department",
    indexTitle: "QĐ 766 national index, month to date",
    indexCaption: "Two rows per agency. First: the points the national portal (Cổng DVCQG) will give (its denominators, 0 for an empty one), to compare with the portal's page. Second: motcua's points over the dossiers whose reported facts decide each indicator.",
    notMeasuredTitle: "Not measured here (needs the procedure catalogue or other data)",
    notMeasured: "not measured here",
    colRule: "Reading",
    rulePortal: "Cổng DVCQG (portal rule)",
    ruleMotcua: "motcua: known facts",
    unverified: (refs) => `⚠ ${refs}: weight unverified`,
    colIndexTotal: (refs) => refs ? `Total compared with the portal (/50, ${refs} left out)` : "Total compared with the portal (/50)",
    groups: { transparency: "Transparency", timeliness: "Timeliness", online_service: "Online service", online_payment: "Online payment", digitisation: "Digitisation", satisfaction: "Satisfaction" },
    points: "points",
  },
};

const QUEUE_NAMES = ["overdue_without_apology", "overdue_with_apology", "due_soon"];

let lang = localStorage.getItem("motcua-board-lang") === "en" ? "en" : "vi";
let period = "month";
let last = null; // the last /api/board answer
let lastOk = 0; // Date.now() of the last successful fetch
let timer = null;

const $ = (selector, root = document) => root.querySelector(selector);
const t = (key) => I18N[lang][key];

// -- formatting: fixed rules, so a reader (or a test) knows exactly what a figure says ----

function groupDigits(text, sep) {
  return text.replace(/\B(?=(\d{3})+(?!\d))/g, sep);
}

function fmtInt(value) {
  if (value === null || value === undefined) return "–";
  return groupDigits(String(value), lang === "vi" ? "." : ",");
}

function fmtDecimal(value, digits) {
  const [whole, frac] = value.toFixed(digits).split(".");
  return fmtInt(Number(whole)) + (lang === "vi" ? "," : ".") + frac;
}

function fmtPct(share) {
  if (share === null || share === undefined) return "–";
  return fmtDecimal(100 * share, 1) + "%";
}

function fmtScore(score) {
  return score === null || score === undefined ? "–" : fmtDecimal(score, 2);
}

function fmtTime(iso) {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}` : "–";
}

// -- the agency table -------------------------------------------------------------------

// Each column: how to read it from an agency row for the chosen period, how to show it,
// and its target (a function saying met or not, or nothing).
const COLUMNS = [
  { col: "received_today", get: (r) => r.today.new, fmt: fmtInt },
  { col: "received_month", get: (r) => r.month.new, fmt: fmtInt },
  { col: "resolved", get: (r, p) => r[p].resolved, fmt: fmtInt },
  { col: "early", get: (r, p) => r[p].early_share, fmt: fmtPct, target: (v, tg) => v >= tg.early_min },
  { col: "timely", get: (r, p) => r[p].timely_share, fmt: fmtPct, target: (v, tg) => v >= tg.on_time_min },
  { col: "late", get: (r, p) => r[p].late_share, fmt: fmtPct },
  { col: "in_progress", get: (r) => r.now.in_progress, fmt: fmtInt },
  { col: "overdue", get: (r) => r.now.overdue, fmt: fmtInt },
  { col: "no_due", get: (r) => r.now.no_due, fmt: fmtInt },
  { col: "overdue_share", get: (r) => r.now.overdue_share, fmt: fmtPct, target: (v, tg) => v < tg.overdue_max },
  { col: "overdue_without_apology", get: (r) => r.now.overdue_without_apology, fmt: fmtInt },
  { col: "score", get: (r, p) => r[p].timeliness_score, fmt: fmtScore },
  { col: "online", get: (r, p) => r[p].online_share, fmt: fmtPct, target: (v, tg) => v >= tg.online_min },
  { col: "postal", get: (r, p) => r[p].postal_share, fmt: fmtPct, target: (v, tg) => v >= tg.postal_min },
];

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setCell(td, column, row, targets) {
  const value = column.get(row, period);
  const shown = column.fmt(value);
  let status = "";
  let cls = "";
  if (column.target && value !== null && value !== undefined) {
    const met = column.target(value, targets);
    status = met ? `✓ ${t("met")}` : `✗ ${t("missed")}`;
    cls = met ? "met" : "missed";
  }
  const value_ = $(".v", td) || td.appendChild(Object.assign(document.createElement("span"), { className: "v" }));
  setText(value_, shown);
  let st = $(".st", td);
  if (status) {
    if (!st) st = td.appendChild(Object.assign(document.createElement("span"), { className: "st" }));
    setText(st, status);
  } else if (st) {
    st.remove();
  }
  if (td.className !== cls) td.className = cls;
}

function agencyRow(tbody, key, label, isHeader) {
  let tr = tbody.querySelector(`tr[data-agency="${CSS.escape(key)}"]`);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.agency = key;
    const th = document.createElement("th");
    th.scope = "row";
    tr.appendChild(th);
    for (const column of COLUMNS) {
      const td = document.createElement("td");
      td.dataset.col = column.col;
      tr.appendChild(td);
    }
  }
  setText(tr.firstChild, label);
  if (isHeader) tr.firstChild.dataset.i18n = "total";
  return tr;
}

function renderAgencies(data) {
  const table = $("#agencies");
  const tbody = table.tBodies[0];
  const wanted = new Set(data.agencies.map((r) => r.agency));
  for (const tr of [...tbody.rows]) if (!wanted.has(tr.dataset.agency)) tr.remove();
  data.agencies.forEach((row, i) => {
    const tr = agencyRow(tbody, row.agency, row.agency, false);
    COLUMNS.forEach((column, j) => setCell(tr.cells[j + 1], column, row, data.targets));
    if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
  });
  table.classList.toggle("incomplete", !data.complete);
  const tfoot = table.tFoot;
  if (data.total) {
    const tr = agencyRow(tfoot, "__total__", t("total"), true);
    if (!tr.parentNode) { tfoot.replaceChildren(tr); }
    COLUMNS.forEach((column, j) => setCell(tr.cells[j + 1], column, data.total, data.targets));
  } else {
    let tr = tfoot.querySelector("tr[data-agency='__none__']");
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.agency = "__none__";
      const th = document.createElement("th");
      th.scope = "row";
      th.colSpan = COLUMNS.length + 1;
      tr.appendChild(th);
      tfoot.replaceChildren(tr);
    }
    setText(tr.firstChild, t("noTotal"));
  }
  const tg = data.targets;
  setText($("#legend"), t("legend")({
    overdue: fmtPct(tg.overdue_max), onTime: fmtPct(tg.on_time_min), early: fmtPct(tg.early_min),
    online: fmtPct(tg.online_min), postal: fmtPct(tg.postal_min),
  }));
}

// -- where late dossiers sit ---------------------------------------------------------------

const DEPARTMENT_COLUMNS = ["overdue_held", "steps_overdue", "steps_late", "steps_on_time"];

function departmentLabel(code) {
  if (code === "none") return t("departmentNone");
  if (code === "other") return t("departmentOther");
  return code;
}

function renderDepartments(data) {
  const table = $("#departments");
  // Partial figures look partial in every table, not only the agencies' (exact or absent).
  table.classList.toggle("incomplete", !data.complete);
  const tbody = table.tBodies[0];
  const rows = data.departments || [];
  const key = (row) => `${row.agency}\u001f${row.department}`;
  const wanted = new Set(rows.map(key));
  for (const tr of [...tbody.rows]) if (!wanted.has(tr.dataset.place)) tr.remove();
  rows.forEach((row, i) => {
    let tr = tbody.querySelector(`tr[data-place="${CSS.escape(key(row))}"]`);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.place = key(row);
      tr.dataset.agency = row.agency;
      tr.dataset.department = row.department;
      const th = document.createElement("th");
      th.scope = "row";
      tr.appendChild(th);
      for (const col of ["department", ...DEPARTMENT_COLUMNS]) {
        const td = document.createElement("td");
        td.dataset.col = col;
        tr.appendChild(td);
      }
    }
    setText(tr.cells[0], row.agency);
    setText(tr.cells[1], departmentLabel(row.department));
    DEPARTMENT_COLUMNS.forEach((col, j) => setText(tr.cells[j + 2], fmtInt(row[col])));
    if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
  });
  table.hidden = rows.length === 0;
  $("#departments-empty").hidden = rows.length !== 0;
}

// -- the national index (QĐ 766) ---------------------------------------------------------

function fmtPoints(points, maximum) {
  return points === null || points === undefined ? t("notMeasured") : `${fmtScore(points)} / ${fmtInt(maximum)}`;
}

const RULES = ["portal", "motcua"];

// A group's cell under one reading: [points, maximum] or null (not measured here). The
// portal row adds the indicators whose weight is a guess (3.3) to their group's cell;
// they stay marked, and neither total counts them.
function groupFigure(group, rule) {
  if (rule === "motcua") return group.points === null ? null : [group.points, group.maximum];
  const parts = [[group.portal_points, group.portal_maximum],
    [group.portal_unverified_points, group.portal_unverified_maximum]].filter(([p]) => p !== null && p !== undefined);
  if (!parts.length) return null;
  return [parts.reduce((a, [p]) => a + p, 0), parts.reduce((a, [, m]) => a + m, 0)];
}

function totalFigure(view, rule) {
  return rule === "portal"
    ? (view.portal_total === null ? null : [view.portal_total, view.portal_max])
    : (view.points_total === null ? null : [view.points_total, view.points_max]);
}

function setIndexCell(td, figure, unverified) {
  const text = figure ? fmtPoints(figure[0], figure[1]) : t("notMeasured");
  const value = $(".v", td) || td.appendChild(Object.assign(document.createElement("span"), { className: "v" }));
  setText(value, text);
  let st = $(".st", td);
  if (figure && unverified.length) {
    if (!st) st = td.appendChild(Object.assign(document.createElement("span"), { className: "st" }));
    setText(st, t("unverified")(unverified.join(", ")));
  } else if (st) {
    st.remove();
  }
  const cls = [figure ? "" : "unmeasured", figure && unverified.length ? "unverified" : ""].filter(Boolean).join(" ");
  if (td.className !== cls) td.className = cls;
}

function indexCells(tr, view, rule) {
  const keys = [...view.groups.map((g) => g.group), "total"];
  keys.forEach((key, j) => {
    let td = tr.querySelector(`td[data-col="${key}"]`);
    if (!td) {
      td = tr.appendChild(document.createElement("td"));
      td.dataset.col = key;
    }
    if (key === "total") setIndexCell(td, totalFigure(view, rule), []);
    else setIndexCell(td, groupFigure(view.groups[j], rule), view.groups[j].weight_unverified || []);
  });
}

// Two rows per agency, the portal's reading first; the agency's header spans both.
function indexRows(parent, key, label) {
  return RULES.map((rule) => {
    let tr = parent.querySelector(`tr[data-agency="${CSS.escape(key)}"][data-rule="${rule}"]`);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.agency = key;
      tr.dataset.rule = rule;
      tr.className = `rule-${rule}`;
      if (rule === "portal") {
        const th = document.createElement("th");
        th.scope = "rowgroup";
        th.rowSpan = 2;
        th.className = "agency";
        tr.appendChild(th);
      }
      const th = document.createElement("th");
      th.scope = "row";
      th.className = "rule";
      tr.appendChild(th);
    }
    if (rule === "portal") setText($("th.agency", tr), label);
    setText($("th.rule", tr), t(rule === "portal" ? "rulePortal" : "ruleMotcua"));
    return tr;
  });
}

function placeRows(parent, rows, at) {
  rows.forEach((tr, k) => {
    if (parent.rows[at + k] !== tr) parent.insertBefore(tr, parent.rows[at + k] || null);
  });
}

function renderIndex(data) {
  const table = $("#index");
  table.classList.toggle("incomplete", !data.complete);
  const index = data.index;
  const head = table.tHead.rows[0];
  const groups = index.agencies.length ? index.agencies[0].groups : (index.total ? index.total.groups : []);
  const excluded = (index.total_excludes || []).join(", ");
  const titles = [t("colRule"), ...groups.map((g) => `${t("groups")[g.group]} (/${fmtInt(g.group_maximum)})`), t("colIndexTotal")(excluded)];
  titles.forEach((title, j) => {
    let th = head.cells[j + 1];
    if (!th) { th = head.appendChild(document.createElement("th")); th.scope = "col"; }
    setText(th, title);
  });
  const tbody = table.tBodies[0];
  const wanted = new Set(index.agencies.map((r) => r.agency));
  for (const tr of [...tbody.rows]) if (!wanted.has(tr.dataset.agency)) tr.remove();
  index.agencies.forEach((row, i) => {
    const rows = indexRows(tbody, row.agency, row.agency);
    rows.forEach((tr, k) => indexCells(tr, row, RULES[k]));
    placeRows(tbody, rows, 2 * i);
  });
  const tfoot = table.tFoot;
  if (index.total) {
    const rows = indexRows(tfoot, "__total__", t("total"));
    if (rows[0].parentNode !== tfoot) tfoot.replaceChildren(...rows);
    rows.forEach((tr, k) => indexCells(tr, index.total, RULES[k]));
  } else {
    let tr = tfoot.querySelector("tr[data-agency='__none__']");
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.agency = "__none__";
      tr.appendChild(Object.assign(document.createElement("th"), { scope: "row" }));
      tfoot.replaceChildren(tr);
    }
    tr.firstChild.colSpan = titles.length + 1;
    setText(tr.firstChild, t("noTotal"));
  }
  const rows = $("#index-not-measured").tBodies[0];
  index.not_measured.forEach((item, i) => {
    let tr = rows.rows[i];
    if (!tr) {
      tr = rows.insertRow();
      tr.appendChild(Object.assign(document.createElement("th"), { scope: "row" }));
      tr.insertCell();
      tr.insertCell();
      tr.insertCell();
    }
    tr.dataset.ref = item.ref;
    setText(tr.cells[0], item.ref);
    setText(tr.cells[1], lang === "vi" && item.title_vi ? item.title_vi : item.title);
    setText(tr.cells[2], t("groups")[item.group]);
    setText(tr.cells[3], item.maximum === null ? "–" : `${fmtInt(item.maximum)} ${t("points")}`);
  });
}

// -- the queues -------------------------------------------------------------------------

const QUEUE_COLUMNS = [
  ["rank", "hRank"], ["dossier", "hDossier"], ["agency", "hAgency"], ["held", "hHeld"],
  ["procedure", "hProcedure"],
  ["received", "hReceived"], ["due", "hDue"], ["days", null], ["new_due", "hNewDue"],
  ["supplements", "hSupplements"], ["json", "hJson"],
];

function queueHead(table, name) {
  if (!table.tHead) {
    const thead = table.createTHead();
    const tr = thead.insertRow();
    for (const [col] of QUEUE_COLUMNS) {
      const th = document.createElement("th");
      th.scope = "col";
      th.dataset.col = col;
      tr.appendChild(th);
    }
    table.createTBody();
  }
  for (const th of table.tHead.rows[0].cells) {
    const key = th.dataset.col === "days"
      ? (name === "due_soon" ? "hRemainingDays" : "hOverdueDays")
      : QUEUE_COLUMNS.find(([c]) => c === th.dataset.col)[1];
    setText(th, t(key));
  }
}

function jsonLink(name, item) {
  const params = new URLSearchParams();
  if (name === "due_soon") params.set("state", "due_soon");
  else {
    params.set("state", "overdue");
    params.set("apology", name === "overdue_with_apology" ? "yes" : "no");
  }
  params.set("agency", item.agency);
  params.set("procedure", item.procedure);
  return `/api/dossiers?${params}`;
}

function renderQueue(name, page, complete) {
  const section = $(`#q-${name}`);
  const table = $("table", section);
  table.classList.toggle("incomplete", !complete);  // a dead worker's dossiers are not in it
  queueHead(table, name);
  setText($(".count", section), t("count")(page.items.length, page.total));
  const tbody = table.tBodies[0];
  const wanted = new Set(page.items.map((item) => item.dossier_id));
  for (const tr of [...tbody.rows]) if (!wanted.has(tr.dataset.dossier)) tr.remove();
  page.items.forEach((item, i) => {
    let tr = tbody.querySelector(`tr[data-dossier="${CSS.escape(item.dossier_id)}"]`);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.dossier = item.dossier_id;
      for (const [col] of QUEUE_COLUMNS) {
        const cell = document.createElement(col === "dossier" ? "th" : "td");
        if (col === "dossier") cell.scope = "row";
        cell.dataset.col = col;
        tr.appendChild(cell);
      }
      const a = document.createElement("a");
      tr.cells[QUEUE_COLUMNS.length - 1].appendChild(a);
    }
    const days = name === "due_soon" ? item.working_days_remaining : item.working_days_overdue;
    // Liên thông: the holding agency is named when it is not the receiving one.
    const held = !item.department ? "–"
      : item.held_by && item.held_by !== item.agency ? `${item.held_by} · ${item.department}`
        : item.department;
    const texts = [
      String(i + 1), item.dossier_id, item.agency, held, item.procedure, fmtTime(item.received_at),
      fmtTime(item.due), fmtInt(days), item.new_due_at ? fmtTime(item.new_due_at) : "–",
      fmtInt(item.supplements),
    ];
    texts.forEach((text, j) => setText(tr.cells[j], text));
    const a = tr.cells[QUEUE_COLUMNS.length - 1].firstChild;
    const href = jsonLink(name, item);
    if (a.getAttribute("href") !== href) a.setAttribute("href", href);
    setText(a, t("json"));
    const label = t("jsonLabel")(item.dossier_id);
    if (a.getAttribute("aria-label") !== label) a.setAttribute("aria-label", label);
    if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
  });
  let empty = $(".empty", section);
  if (page.items.length === 0) {
    if (!empty) {
      empty = Object.assign(document.createElement("p"), { className: "empty" });
      section.appendChild(empty);
    }
    setText(empty, t("none"));
  } else if (empty) {
    empty.remove();
  }
  table.hidden = page.items.length === 0;
}

// -- status, header, language -----------------------------------------------------------

function ranges(list) {
  const out = [];
  for (const p of list) {
    const lastRange = out[out.length - 1];
    if (lastRange && lastRange[1] === p - 1) lastRange[1] = p;
    else out.push([p, p]);
  }
  return out.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(", ");
}

function renderStatus() {
  const banner = $("#status");
  const messages = [];
  const warnings = [];
  const stale = !last || Date.now() - lastOk > 3000 * (last ? last.refresh_s : 5) || last.stale;
  if (!last) {
    messages.push(t("unreachable"));
  } else {
    const down = last.workers.filter((w) => w.status !== "ok");
    const downText = down.length
      ? t("workersDown")(down.map((w) => `${w.url} (${t("workerStatus")[w.status] || w.status})`).join(", "))
      : "";
    if (last.partitions.missing.length) messages.push(t("incomplete")(ranges(last.partitions.missing), downText));
    else if (down.length) warnings.push(t("workerMissing")(downText.slice(2)));
    if (last.partitions.twice.length) messages.push(t("twice")(ranges(last.partitions.twice)));
    const unexpected = last.partitions.unexpected || [];
    if (unexpected.length) messages.push(t("unexpected")(ranges(unexpected), last.partitions.expected));
    if (stale) messages.push(t("stale")(last.as_of.slice(11, 19)));
  }
  const text = [...messages, ...warnings].join(" ");
  banner.hidden = !text;
  setText(banner, text);
  banner.className = messages.length ? "banner bad" : warnings.length ? "banner warn" : "banner";
  document.body.classList.toggle("stale", Boolean(last) && stale);
}

function renderWorkers(data) {
  const parts = data.workers.map((w) =>
    `${w.url}: ${t("workerStatus")[w.status] || w.status}` +
    (w.partitions.length ? ` (${t("partitionsWord")} ${ranges(w.partitions)})` : ""));
  setText($("#workers"), `${t("workersLine")} ${parts.join("; ")}`);
}

function render() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-i18n]")) {
    const text = t(node.dataset.i18n);
    if (typeof text === "string") setText(node, text);
  }
  const button = $("#lang");
  setText(button, t("langButton"));
  button.lang = lang === "vi" ? "en" : "vi";
  button.setAttribute("aria-label", t("langLabel"));
  $("#period-month").setAttribute("aria-pressed", String(period === "month"));
  $("#period-today").setAttribute("aria-pressed", String(period === "today"));
  renderStatus();
  if (!last) return;
  setText($("#updated"), last.as_of.slice(11, 19));
  $("#updated").setAttribute("datetime", last.as_of);
  setText($("#today"), last.today);
  renderAgencies(last);
  renderDepartments(last);
  renderIndex(last);
  for (const name of QUEUE_NAMES) renderQueue(name, last.queues[name], last.complete);
  renderWorkers(last);
}

async function refresh() {
  try {
    const response = await fetch("/api/board", { cache: "no-store" });
    if (response.ok) {
      last = await response.json();
      lastOk = Date.now();
    }
  } catch (error) {
    // keep the last figures on screen; the status line says they are stale
  }
  render();
  clearTimeout(timer);
  timer = setTimeout(refresh, 1000 * (last ? last.refresh_s : 5));
}

// Wall mode (`?wall`): a screen nobody touches still shows the whole page. It rests at the
// top for `pause` seconds, scrolls down at `speed` pixels a second, rests at the bottom, and
// starts again from the top; with reduced motion asked for, it moves a screen at a time.
// The status banner stays in view (CSS), so an incomplete or stale board is never hidden.
const WALL_SPEED = 40; // px per second: a line of the tables every half second or so
const WALL_PAUSE = 10; // seconds at the top and at the bottom
const WALL_TICK = 50; // ms between two moves

function wallSetting(params, name, fallback) {
  const value = Number(params.get(name));
  return params.has(name) && Number.isFinite(value) && value > 0 ? value : fallback;
}

function startWall(params) {
  const speed = wallSetting(params, "speed", WALL_SPEED);
  const pause = 1000 * wallSetting(params, "pause", WALL_PAUSE);
  const stepwise = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  document.documentElement.classList.add("wall");
  history.scrollRestoration = "manual"; // a reload starts at the top too
  window.scrollTo(0, 0);
  let resting = "top";
  let since = Date.now();
  let y = 0;
  setInterval(() => {
    const now = Date.now();
    const bottom = Math.max(0, document.documentElement.scrollHeight - window.innerHeight);
    if (resting) {
      if (now - since < pause) return;
      if (resting === "bottom" || bottom === 0) {
        y = 0;
        resting = "top";
        since = now;
        window.scrollTo(0, 0);
        return;
      }
      resting = null;
      since = now - pause; // the first move comes at once: the rest was the wait
    }
    if (stepwise) {
      if (now - since < pause) return;
      y = Math.min(bottom, y + window.innerHeight * 0.9);
      since = now;
    } else {
      y = Math.min(bottom, y + (speed * WALL_TICK) / 1000);
    }
    window.scrollTo(0, y);
    if (y >= bottom) {
      resting = "bottom";
      since = now;
    }
  }, WALL_TICK);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#lang").addEventListener("click", () => {
    lang = lang === "vi" ? "en" : "vi";
    localStorage.setItem("motcua-board-lang", lang);
    render();
  });
  $("#period-month").addEventListener("click", () => { period = "month"; render(); });
  $("#period-today").addEventListener("click", () => { period = "today"; render(); });
  render();
  refresh();
  const params = new URLSearchParams(window.location.search);
  if (params.has("wall")) startWall(params);
});
