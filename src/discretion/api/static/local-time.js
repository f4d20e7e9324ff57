// The server writes every time in UTC; show each in the approver's own zone, keeping the UTC
// time as the element's title. Without this script the UTC times stand as written.
(function () {
  var shown = { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
  var days = { year: "numeric", month: "short", day: "numeric" };
  document.querySelectorAll("time[datetime]").forEach(function (element) {
    var at = new Date(element.getAttribute("datetime"));
    if (isNaN(at.getTime())) return;
    element.title = element.textContent;
    element.textContent = at.toLocaleString(undefined, element.dataset.day ? days : shown);
    element.dataset.local = "yes";
  });
})();
