/* salespulse today pages: poll the JSON endpoint and update the numbers in place.
 *
 * The server renders the first view (see processors/web/render.py); this script only patches
 * texts, classes and bar widths into elements marked with data-subject / data-metric /
 * data-field / data-state, and rebuilds the alert lists (data-alerts). Every text is set with
 * textContent, never as HTML. When the directory changed (another layout), the page reloads.
 */
(function () {
  "use strict";

  var body = document.body;
  var root = body.getAttribute("data-root") || "";
  var every = (Number(body.getAttribute("data-refresh")) || 5) * 1000;
  var layout = body.getAttribute("data-layout") || "";
  var status = document.getElementById("status");
  var lastStatus = status ? status.textContent : "";

  function setText(el, value) {
    if (el.textContent !== value) {
      el.textContent = value;
    }
  }

  function subjects(data) {
    var found = {};
    data.departments.forEach(function (department) {
      found["department:" + department.id] = department;
      department.managers.forEach(function (manager) {
        found["manager:" + manager.id] = manager;
      });
    });
    return found;
  }

  function updateMetric(el, metric) {
    el.querySelectorAll("[data-field]").forEach(function (field) {
      var name = field.getAttribute("data-field");
      if (name === "bar") {
        field.style.width = (metric.bar || 0) + "%";
      } else if (Object.prototype.hasOwnProperty.call(metric.text, name)) {
        setText(field, metric.text[name]);
      }
    });
    el.classList.toggle("dipping", metric.dipping);
    if (metric.text.dip) {
      if (el.title !== metric.text.dip) {
        el.title = metric.text.dip;
      }
    } else if (el.hasAttribute("title")) {
      el.removeAttribute("title");
    }
    el.classList.toggle("unknown", metric.share === null);
  }

  function updateSubjects(found) {
    document.querySelectorAll("[data-subject]").forEach(function (el) {
      var subject = found[el.getAttribute("data-subject")];
      if (!subject) {
        return;
      }
      var metric = el.getAttribute("data-metric");
      if (metric) {
        if (subject.metrics[metric]) {
          updateMetric(el, subject.metrics[metric]);
        }
        return;
      }
      var state = el.getAttribute("data-state");
      if (state && Object.prototype.hasOwnProperty.call(subject.text, state)) {
        setText(el, subject.text[state]);
      }
      if (state === "working") {
        el.classList.toggle("off", !subject.working);
      }
    });
  }

  function inScope(alert, scope) {
    if (!scope) {
      return true;
    }
    var colon = scope.indexOf(":");
    var kind = scope.slice(0, colon);
    var id = scope.slice(colon + 1);
    return kind === "manager" ? alert.manager_id === id : alert.department_id === id;
  }

  function alertItem(alert) {
    var item = document.createElement("li");
    item.className = "alert " + alert.severity;
    item.setAttribute("data-key", alert.key);
    var severity = document.createElement("span");
    severity.className = "severity";
    severity.textContent = alert.severity;
    var link = document.createElement("a");
    link.href = root + alert.link;
    link.textContent = alert.text.summary;
    var when = document.createElement("span");
    when.className = "when";
    when.textContent = alert.text.when;
    item.append(severity, " ", link, " ", when);
    return item;
  }

  function updateAlerts(alerts) {
    document.querySelectorAll("[data-alerts]").forEach(function (list) {
      var scope = list.getAttribute("data-alerts");
      var items = alerts.filter(function (alert) {
        return inScope(alert, scope);
      }).map(alertItem);
      if (!items.length) {
        var none = document.createElement("li");
        none.className = "none";
        none.textContent = "No open alerts.";
        items.push(none);
      }
      list.replaceChildren.apply(list, items);
    });
  }

  function apply(data) {
    if (data.layout !== layout) {
      window.location.reload();
      return;
    }
    updateSubjects(subjects(data));
    updateAlerts(data.alerts);
    body.classList.toggle("stale", data.stale);
    setText(status, data.status);
    lastStatus = data.status;
  }

  function poll() {
    fetch(root + "api/today", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok && response.status !== 503) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(apply)
      .catch(function (error) {
        body.classList.add("stale");
        setText(status, "worker not reachable (" + error.message + "); last " + lastStatus);
      })
      .finally(function () {
        window.setTimeout(poll, every);
      });
  }

  window.setTimeout(poll, every);
})();
