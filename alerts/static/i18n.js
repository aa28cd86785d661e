// The dashboard's message catalogue: Simplified Chinese (default) and English.
// Every label, alert kind, status, severity and error the operator sees comes
// from here; API error codes stay English identifiers and are translated here.
"use strict";
(function () {
  const CATALOGUE = {
    "zh-CN": {
      "app.title": "wardstream 指挥中心", "app.sub": "指挥中心",
      "lang.toggle": "English", "lang.name": "中文", "tz.label": "时区", "tz.shanghai": "北京时间",
      "tz.urumqi": "乌鲁木齐时间", "tz.hongkong": "香港时间", "tz.utc": "协调世界时",
      "live.on": "实时", "live.off": "离线", "live.title": "实时数据流",
      "auth.signin": "登录", "auth.username": "用户名", "auth.password": "密码", "auth.logout": "退出",
      "auth.signedOut": "已退出登录", "who.national": "全国",
      "role.viewer": "查看员", "role.operator": "值班员", "role.supervisor": "主管", "role.admin": "管理员",
      "left.jurisdictions": "辖区", "left.response": "响应时间", "left.responseSub": "中位数 / 90分位，分钟",
      "left.failedPages": "发送失败的通知", "left.persons": "人员", "left.filter": "筛选人员",
      "col.area": "辖区", "col.alerts": "告警", "col.persons": "人员", "col.sev": "级别", "col.ack": "签收",
      "col.scene": "到场", "col.resolve": "处置", "col.alertsTitle": "按颜色统计的未结告警",
      "col.personsTitle": "按风险颜色统计的人员", "col.ackTitle": "至签收", "col.sceneTitle": "至到场",
      "col.resolveTitle": "至处置完成",
      "map.zoomIn": "放大", "map.zoomOut": "缩小", "map.fit": "全图", "map.label": "区域与位置地图",
      "queue.title": "告警队列", "queue.open": "（{n} 条未处理）", "queue.showClosed": "显示已处置",
      "timeline.title": "时间线", "timeline.close": "关闭",
      "sev.red": "红色", "sev.orange": "橙色", "sev.yellow": "黄色", "sev.blue": "蓝色",
      "status.open": "未处理", "status.cleared": "已解除", "status.acknowledged": "已签收", "status.resolved": "已处置",
      "event.opened": "告警产生", "event.updated": "告警更新", "event.cleared": "条件解除", "event.acknowledged": "签收",
      "event.resolved": "处置完成", "event.escalated": "升级",
      "kind.exclusion_entered": "进入禁入区", "kind.exclusion_approach": "接近禁入区", "kind.inclusion_left": "离开限定区域",
      "kind.curfew_violated": "违反宵禁", "kind.contact": "违规接触", "kind.signal_lost": "信号丢失",
      "kind.tamper": "设备被破坏", "kind.removed": "设备被摘除", "kind.sos": "紧急求助", "kind.power_off": "设备关机",
      "kind.battery_low": "电量低", "kind.device_conflict": "设备冲突", "kind.spoofing_suspected": "疑似位置伪造",
      "kind.device_separation": "人机分离", "kind.video_perimeter_breach": "周界入侵", "kind.video_fight": "打架斗殴",
      "kind.video_crowd": "人员聚集", "kind.video_fall": "人员跌倒", "kind.video_loitering": "可疑徘徊",
      "kind.checkin_missed": "未按时签到", "kind.checkin_failed": "签到身份核验未通过", "kind.checkin_outside": "签到位置越界",
      "checkins.title": "签到记录（近 7 天）", "checkins.time": "时间", "checkins.result": "核验结果", "checkins.score": "人脸比对分数",
      "checkins.method": "核验方式", "checkins.request": "签到请求", "checkins.where": "位置",
      "checkins.verified": "核验通过", "checkins.failed": "核验未通过：{why}", "checkins.unjudged": "未核验（无签到规则）",
      "checkins.and": "；", "checkins.why.face_score": "人脸比对分数 {score} 低于阈值 {min}", "checkins.why.action": "动作活体检测未通过",
      "checkins.why.no_result": "无核验结果", "checkins.scoreOf": "{score}（阈值 {min}）",
      "checkins.method.face": "人脸识别", "checkins.method.face_action": "人脸识别 + 动作活体", "checkins.method.action": "动作活体检测",
      "checkins.unrequested": "—（非随机抽查）", "checkins.where.inside": "在限定区域内", "checkins.where.outside": "在限定区域外",
      "checkins.where.uncertain": "无法确定（定位精度不足）", "checkins.owed": "未完成的签到：{keys}", "checkins.actionOk": "动作活体检测通过", "evidence.checkin": "签到", "checkins.noZone": "无限定区域", "checkins.accuracy": "精度 ±{acc} 米",
      "category.exclusion": "禁入区", "category.inclusion": "限定区域", "category.district": "行政区",
      "category.facility": "场所", "category.none": "区域", "category.school": "学校", "category.bar": "酒吧",
      "category.victim": "被害人住所", "category.home": "住所",
      "zone.withCategory": "{zone}（{cat}）",
      "tier.county": "县级", "tier.city": "市级", "tier.province": "省级",
      "evidence.gnss": "卫星定位", "evidence.gps": "卫星定位", "evidence.gps+video": "卫星定位与视频", "evidence.video": "视频",
      "alert.facility": "场所", "alert.opened": "产生于 {t}", "alert.cleared": "解除于 {t}", "alert.late": "迟到数据",
      "alert.escalated": "已升级至{tier}", "alert.ackBy": "签收人：{who}", "alert.note": "备注：{note}",
      "alert.details": "详情", "alert.dispatchNotes": "派警与备注", "alert.hideDispatch": "收起派警与备注",
      "alert.ack": "签收", "alert.resolve": "处置", "alert.notePh": "备注（可选）", "alert.notePhReq": "备注（必填）",
      "alert.noteLabel": "处置备注",
      "confirm.title": "确认处置红色告警", "confirm.text": "该红色告警尚未解除。处置前请填写备注说明情况。",
      "confirm.note": "处置说明（必填）", "confirm.ok": "确认处置", "confirm.cancel": "取消",
      "confirm.needNote": "请填写处置说明",
      "result.acknowledged": "已签收告警 {id}", "result.resolved": "已处置告警 {id}", "result.dispatched": "已派警",
      "result.advanced": "派警状态已更新", "result.noted": "备注已添加", "result.exported": "已开始导出",
      "dispatch.none": "未派警", "dispatch.sent": "已派 {who}{unit} · {status} · 派出 {t}",
      "dispatch.onScene": " · 到场 {t}", "dispatch.done": " · 完成 {t}", "dispatch.officer": "警员",
      "dispatch.officerLabel": "派遣的警员", "dispatch.dispatch": "派警", "dispatch.reassign": "改派",
      "dispatch.status.dispatched": "已派出", "dispatch.status.en_route": "赶赴途中", "dispatch.status.on_scene": "已到场",
      "dispatch.status.resolved": "已完成", "dispatch.addNote": "添加备注", "dispatch.notePh": "输入备注",
      "failed.attempts": "{n} 次尝试", "channel.webhook": "Webhook", "channel.email": "电子邮件", "channel.sms": "短信",
      "channel.dingtalk": "钉钉", "channel.wecom": "企业微信", "channel.mqtt": "MQTT",
      "err.bad_credentials": "用户名或密码错误",
      "tl.fix": "定位 {lat}, {lon} ±{acc} 米", "tl.noSat": "（无卫星定位）", "tl.inZone": " · 位于{zone}内", "tl.opened": "{sev}{kind}告警产生（{status}）",
      "tl.cleared": "{kind}解除", "tl.ack": "{kind}由 {who} 签收", "tl.resolved": "{kind}由 {who} 处置",
      "detail.title": "告警详情", "detail.close": "关闭", "detail.what": "经过", "detail.zone": "区域",
      "detail.distanceIn": "在区域边界内 {m} 米", "detail.distanceOut": "距区域边界 {m} 米",
      "detail.duration": "持续时间", "detail.device": "设备", "detail.evidence": "证据", "detail.tier": "升级层级",
      "detail.assignee": "处置警员", "detail.notes": "备注", "detail.lifecycle": "处置过程", "detail.person": "人员",
      "detail.jurisdiction": "辖区", "detail.severity": "级别", "detail.status": "状态", "detail.none": "无",
      "detail.sentence": "{person}于 {t} {kind}{zone}。",
      "detail.inZone": "（{zone}，{cat}）", "detail.ongoing": "{d}（仍在持续）", "detail.track": "轨迹与区域已在地图上显示",
      "dur.s": "{n} 秒", "dur.m": "{n} 分钟", "dur.h": "{h} 小时 {m} 分钟", "dur.d": "{d} 天 {h} 小时",
      "reports.title": "报表", "reports.daily": "日报", "reports.date": "日期", "reports.area": "辖区",
      "reports.show": "查看日报", "reports.csv": "下载 CSV", "reports.byKind": "按告警类型", "reports.bySeverity": "按级别",
      "reports.response": "响应时间（分钟，中位数）", "reports.personsByRisk": "按风险的人员", "reports.offline": "离线设备",
      "reports.kind": "类型", "reports.count": "数量", "reports.none": "无", "reports.export": "轨迹导出",
      "reports.person": "人员编号", "reports.from": "开始", "reports.to": "结束", "reports.exportBtn": "导出轨迹 CSV",
      "reports.close": "关闭", "reports.lastSeen": "最后上报",
      "scale.m": "{n} 米", "scale.km": "{n} 公里",
      "err.unauthorized": "未登录或登录已过期", "err.forbidden": "无权访问（超出辖区或权限不足）", "err.not_found": "未找到",
      "err.bad_request": "请求无效", "err.too_large": "请求内容过大", "err.too_deep": "请求内容嵌套过深",
      "err.rate_limited": "尝试过于频繁，请稍后再试", "err.unavailable": "服务暂不可用，请重试",
      "err.note_required": "处置此告警需要填写备注", "err.note_too_long": "备注过长",
      "err.already_resolved": "该告警已处置", "err.not_dispatched": "该告警尚未派警", "err.out_of_order": "派警状态不能倒退",
      "err.method_not_allowed": "不支持的操作", "err.network": "网络错误，无法连接服务器", "err.generic": "操作失败（{code}）",
      "kind.leave_overdue": "请假逾期未归", "kind.positioning_term_ending": "定位期限即将届满",
      "leave.title": "请假", "leave.onLeave": "请假中", "leave.none": "没有待办或进行中的请假",
      "leave.state.requested": "待审批", "leave.state.approved": "已批准", "leave.state.rejected": "未批准",
      "leave.state.active": "请假中", "leave.state.ended": "已销假", "leave.state.cancelled": "已撤销",
      "leave.level.office": "司法所", "leave.level.county": "司法局",
      "leave.period": "{from} 至 {until}（{days} 天）", "leave.reason": "事由：{reason}", "leave.by": "申请人：{who}",
      "leave.decided": "审批：{who}（{level}）", "leave.needs": "需{level}审批",
      "leave.approve": "批准", "leave.reject": "不批准", "leave.cancel": "撤销", "leave.return": "销假",
      "leave.notePh": "审批意见（不批准时必填）", "leave.noteLabel": "请假审批意见",
      "result.leave.approve": "已批准请假 {id}", "result.leave.reject": "已不批准请假 {id}",
      "result.leave.cancel": "已撤销请假 {id}", "result.leave.return": "已为请假 {id} 销假",
      "err.invalid_value": "取值无效", "err.no_current_order": "该人员没有生效的监管令",
      "err.leave_state": "该请假当前的状态不允许此操作",
    },
    en: {
      "app.title": "wardstream command centre", "app.sub": "command centre",
      "lang.toggle": "中文", "lang.name": "English", "tz.label": "time zone", "tz.shanghai": "Beijing time",
      "tz.urumqi": "Urumqi time", "tz.hongkong": "Hong Kong time", "tz.utc": "UTC",
      "live.on": "live", "live.off": "offline", "live.title": "live feed",
      "auth.signin": "Sign in", "auth.username": "Username", "auth.password": "Password", "auth.logout": "Log out",
      "auth.signedOut": "signed out", "who.national": "national",
      "role.viewer": "viewer", "role.operator": "operator", "role.supervisor": "supervisor", "role.admin": "admin",
      "left.jurisdictions": "Jurisdictions", "left.response": "Response times", "left.responseSub": "median / p90, minutes",
      "left.failedPages": "Pages that failed", "left.persons": "Persons", "left.filter": "filter persons",
      "col.area": "area", "col.alerts": "alerts", "col.persons": "persons", "col.sev": "sev", "col.ack": "ack",
      "col.scene": "scene", "col.resolve": "resolve", "col.alertsTitle": "open alerts by colour",
      "col.personsTitle": "persons by risk colour", "col.ackTitle": "to acknowledge", "col.sceneTitle": "to on scene",
      "col.resolveTitle": "to resolve",
      "map.zoomIn": "zoom in", "map.zoomOut": "zoom out", "map.fit": "fit", "map.label": "map of zones and positions",
      "queue.title": "Alert queue", "queue.open": "({n} open)", "queue.showClosed": "show resolved",
      "timeline.title": "Timeline", "timeline.close": "close",
      "sev.red": "red", "sev.orange": "orange", "sev.yellow": "yellow", "sev.blue": "blue",
      "status.open": "open", "status.cleared": "cleared", "status.acknowledged": "acknowledged", "status.resolved": "resolved",
      "event.opened": "opened", "event.updated": "updated", "event.cleared": "cleared", "event.acknowledged": "acknowledged",
      "event.resolved": "resolved", "event.escalated": "escalated",
      "kind.exclusion_entered": "entered an exclusion zone", "kind.exclusion_approach": "approaching an exclusion zone",
      "kind.inclusion_left": "left the inclusion zone", "kind.curfew_violated": "curfew violated", "kind.contact": "prohibited contact",
      "kind.signal_lost": "signal lost", "kind.tamper": "device tampered", "kind.removed": "device removed", "kind.sos": "SOS",
      "kind.power_off": "device powered off", "kind.battery_low": "battery low", "kind.device_conflict": "device conflict",
      "kind.spoofing_suspected": "location spoofing suspected", "kind.device_separation": "device separation",
      "kind.video_perimeter_breach": "perimeter breach", "kind.video_fight": "fight", "kind.video_crowd": "crowd",
      "kind.video_fall": "person fell", "kind.video_loitering": "loitering",
      "kind.checkin_missed": "check-in missed", "kind.checkin_failed": "check-in identity not verified", "kind.checkin_outside": "checked in outside the permitted area",
      "checkins.title": "Check-ins (last 7 days)", "checkins.time": "time", "checkins.result": "result", "checkins.score": "face score",
      "checkins.method": "method", "checkins.request": "request", "checkins.where": "where",
      "checkins.verified": "verified", "checkins.failed": "not verified: {why}", "checkins.unjudged": "not judged (no check-in rule)",
      "checkins.and": "; ", "checkins.why.face_score": "face score {score} below the threshold {min}", "checkins.why.action": "liveness action failed",
      "checkins.why.no_result": "no verification result", "checkins.scoreOf": "{score} (threshold {min})",
      "checkins.method.face": "face match", "checkins.method.face_action": "face match + liveness action", "checkins.method.action": "liveness action",
      "checkins.unrequested": "— (not a random request)", "checkins.where.inside": "inside the permitted area", "checkins.where.outside": "outside the permitted area",
      "checkins.where.uncertain": "cannot tell (position too coarse)", "checkins.owed": "check-ins owed: {keys}", "checkins.actionOk": "liveness action passed", "evidence.checkin": "check-in", "checkins.noZone": "no permitted area", "checkins.accuracy": "±{acc} m",
      "category.exclusion": "exclusion zone", "category.inclusion": "inclusion zone", "category.district": "district",
      "category.facility": "facility", "category.none": "zone", "category.school": "school", "category.bar": "bar",
      "category.victim": "victim's home", "category.home": "home",
      "zone.withCategory": "{zone} ({cat})",
      "tier.county": "county", "tier.city": "city", "tier.province": "province",
      "evidence.gnss": "satellite fix", "evidence.gps": "satellite fix", "evidence.gps+video": "satellite fix and video", "evidence.video": "video",
      "alert.facility": "facility", "alert.opened": "opened {t}", "alert.cleared": "cleared {t}", "alert.late": "late data",
      "alert.escalated": "escalated to {tier}", "alert.ackBy": "acknowledged by {who}", "alert.note": "note: {note}",
      "alert.details": "Details", "alert.dispatchNotes": "Dispatch and notes", "alert.hideDispatch": "Hide dispatch and notes",
      "alert.ack": "Acknowledge", "alert.resolve": "Resolve", "alert.notePh": "note (optional)", "alert.notePhReq": "note (required)",
      "alert.noteLabel": "resolution note",
      "confirm.title": "Resolve a red alert", "confirm.text": "This red alert has not cleared. Say what was done before resolving it.",
      "confirm.note": "resolution note (required)", "confirm.ok": "Resolve", "confirm.cancel": "Cancel",
      "confirm.needNote": "a note is required",
      "result.acknowledged": "alert {id} acknowledged", "result.resolved": "alert {id} resolved", "result.dispatched": "dispatched",
      "result.advanced": "dispatch status updated", "result.noted": "note added", "result.exported": "export started",
      "dispatch.none": "not dispatched", "dispatch.sent": "dispatched {who}{unit} · {status} · sent {t}",
      "dispatch.onScene": " · on scene {t}", "dispatch.done": " · done {t}", "dispatch.officer": "officer",
      "dispatch.officerLabel": "officer to dispatch", "dispatch.dispatch": "Dispatch", "dispatch.reassign": "Reassign",
      "dispatch.status.dispatched": "dispatched", "dispatch.status.en_route": "en route", "dispatch.status.on_scene": "on scene",
      "dispatch.status.resolved": "resolved", "dispatch.addNote": "Add note", "dispatch.notePh": "add a note",
      "failed.attempts": "{n} attempts", "channel.webhook": "webhook", "channel.email": "e-mail", "channel.sms": "SMS",
      "channel.dingtalk": "DingTalk", "channel.wecom": "WeCom", "channel.mqtt": "MQTT",
      "err.bad_credentials": "wrong username or password",
      "tl.fix": "fix {lat}, {lon} ±{acc} m", "tl.noSat": " (no satellite fix)", "tl.inZone": " · inside {zone}", "tl.opened": "{sev} {kind} opened ({status})",
      "tl.cleared": "{kind} cleared", "tl.ack": "{kind} acknowledged by {who}", "tl.resolved": "{kind} resolved by {who}",
      "detail.title": "Alert detail", "detail.close": "close", "detail.what": "What happened", "detail.zone": "Zone",
      "detail.distanceIn": "{m} m inside the boundary", "detail.distanceOut": "{m} m from the boundary",
      "detail.duration": "Duration", "detail.device": "Device", "detail.evidence": "Evidence", "detail.tier": "Escalation tier",
      "detail.assignee": "Assignee", "detail.notes": "Notes", "detail.lifecycle": "Lifecycle", "detail.person": "Person",
      "detail.jurisdiction": "Jurisdiction", "detail.severity": "Severity", "detail.status": "Status", "detail.none": "none",
      "detail.sentence": "{person}: {kind}{zone} at {t}.",
      "detail.inZone": " ({zone}, {cat})", "detail.ongoing": "{d} (ongoing)", "detail.track": "track and zone shown on the map",
      "dur.s": "{n} s", "dur.m": "{n} min", "dur.h": "{h} h {m} min", "dur.d": "{d} d {h} h",
      "reports.title": "Reports", "reports.daily": "Daily report", "reports.date": "Date", "reports.area": "Jurisdiction",
      "reports.show": "Show report", "reports.csv": "Download CSV", "reports.byKind": "By alert kind", "reports.bySeverity": "By severity",
      "reports.response": "Response times (minutes, median)", "reports.personsByRisk": "Persons by risk", "reports.offline": "Devices offline",
      "reports.kind": "kind", "reports.count": "count", "reports.none": "none", "reports.export": "Track export",
      "reports.person": "Person id", "reports.from": "From", "reports.to": "To", "reports.exportBtn": "Export track CSV",
      "reports.close": "close", "reports.lastSeen": "last seen",
      "scale.m": "{n} m", "scale.km": "{n} km",
      "err.unauthorized": "not signed in, or the session has expired", "err.forbidden": "not allowed (outside your jurisdiction or role)",
      "err.not_found": "not found", "err.bad_request": "invalid request", "err.too_large": "the request is too large",
      "err.too_deep": "the request nests too deep", "err.rate_limited": "too many attempts; try again later",
      "err.unavailable": "the service is unavailable; try again", "err.note_required": "resolving this alert needs a note",
      "err.note_too_long": "the note is too long", "err.already_resolved": "the alert is already resolved",
      "err.not_dispatched": "the alert has no dispatch", "err.out_of_order": "a dispatch cannot go back a step",
      "err.method_not_allowed": "operation not supported", "err.network": "network error: the server cannot be reached",
      "err.generic": "the action failed ({code})",
      "kind.leave_overdue": "leave overdue, not back", "kind.positioning_term_ending": "positioning term ending soon",
      "leave.title": "Leave", "leave.onLeave": "on leave", "leave.none": "no leave pending or under way",
      "leave.state.requested": "requested", "leave.state.approved": "approved", "leave.state.rejected": "rejected",
      "leave.state.active": "on leave", "leave.state.ended": "ended", "leave.state.cancelled": "cancelled",
      "leave.level.office": "justice office", "leave.level.county": "county bureau",
      "leave.period": "{from} to {until} ({days} days)", "leave.reason": "reason: {reason}", "leave.by": "requested by {who}",
      "leave.decided": "approved by {who} ({level})", "leave.needs": "needs the {level}",
      "leave.approve": "Approve", "leave.reject": "Reject", "leave.cancel": "Cancel", "leave.return": "Record return",
      "leave.notePh": "decision note (required to reject)", "leave.noteLabel": "leave decision note",
      "result.leave.approve": "leave {id} approved", "result.leave.reject": "leave {id} rejected",
      "result.leave.cancel": "leave {id} cancelled", "result.leave.return": "return recorded for leave {id}",
      "err.invalid_value": "invalid value", "err.no_current_order": "the person has no order in force",
      "err.leave_state": "the leave's state does not allow this",
    },
  };
  const LANGS = ["zh-CN", "en"];
  const store = window.localStorage;
  let lang = LANGS.includes(store.getItem("wardstream.lang")) ? store.getItem("wardstream.lang") : "zh-CN";
  // Time zones an operator can pick (the catalogue names them); Asia/Shanghai by default.
  const ZONES = { "Asia/Shanghai": "tz.shanghai", "Asia/Urumqi": "tz.urumqi", "Asia/Hong_Kong": "tz.hongkong", UTC: "tz.utc" };
  let zone = ZONES[store.getItem("wardstream.tz")] ? store.getItem("wardstream.tz") : "Asia/Shanghai";
  function setZone(next) { zone = ZONES[next] ? next : "Asia/Shanghai"; store.setItem("wardstream.tz", zone); }

  function has(key) { return Object.prototype.hasOwnProperty.call(CATALOGUE[lang], key); }
  function t(key, params) {
    const text = has(key) ? CATALOGUE[lang][key] : (CATALOGUE.en[key] != null ? CATALOGUE.en[key] : key);
    return text.replace(/\{(\w+)\}/g, (m, k) => (params && params[k] != null ? String(params[k]) : ""));
  }
  // A code from the API (kind, status, error) in words; the raw code when it is not catalogued.
  function code(prefix, value) { return value == null ? "" : has(prefix + value) ? t(prefix + value) : String(value); }
  function apply(root) {
    document.documentElement.lang = lang;
    for (const node of (root || document).querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const [attr, key] of [["placeholder", "i18nPlaceholder"], ["title", "i18nTitle"], ["aria-label", "i18nAria"]]) {
      for (const node of (root || document).querySelectorAll(`[data-${key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}]`)) node.setAttribute(attr, t(node.dataset[key]));
    }
    document.title = t("app.title");
  }
  function setLang(next) { lang = LANGS.includes(next) ? next : "zh-CN"; store.setItem("wardstream.lang", lang); apply(); }
  const timeFormat = () => new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  // A timestamp in the operator's time zone: YYYY-MM-DD HH:MM:SS.
  function time(ts) {
    if (!ts) return "";
    const d = new Date(ts);
    if (isNaN(d)) return String(ts);
    const p = Object.fromEntries(timeFormat().formatToParts(d).map((x) => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  }
  // Today's date (YYYY-MM-DD) in the operator's time zone.
  function today() { return time(new Date()).slice(0, 10); }
  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return t("dur.s", { n: s });
    if (s < 3600) return t("dur.m", { n: Math.round(s / 60) });
    if (s < 86400) return t("dur.h", { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
    return t("dur.d", { d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
  }
  window.wardI18n = { t, code, apply, setLang, setZone, time, today, duration, ZONES, LANGS,
    get lang() { return lang; }, get zone() { return zone; } };
})();
