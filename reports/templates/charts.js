(function () {
  "use strict";
  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
  var drawn = [];
  var template = JSON.parse(document.getElementById("plotly-template").textContent);
  document.querySelectorAll("script.chart-spec").forEach(function (spec) {
    var figure = JSON.parse(spec.textContent);
    figure.layout.template = template;  // one copy per page, not per chart
    var target = document.getElementById(spec.getAttribute("data-chart"));
    Plotly.newPlot(target, figure.data, figure.layout, config);
    drawn.push(target);
  });
  // Printed pages fit the charts to the paper.
  window.addEventListener("beforeprint", function () {
    drawn.forEach(function (target) { Plotly.Plots.resize(target); });
  });
})();
