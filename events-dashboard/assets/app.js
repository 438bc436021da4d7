"use strict";
// The overview, from the JSON API; the full page replaces this.
fetch("api/overview", { headers: { "x-events-dashboard": "1" } })
  .then((r) => r.json())
  .then((o) => {
    document.getElementById("main").textContent =
      `Jobs per minute: ${o.jobs_per_minute}; jobs in the last hour: ${o.jobs_last_hour}; failed in the last 7 days: ${o.failed_last_7_days}`;
  });
