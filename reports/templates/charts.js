(function () {
  "use strict";
  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
  var drawn = [];
  document.querySelectorAll("script.chart-spec").forEach(function (spec) {
    var figure = JSON.parse(spec.textContent);
    var target = document.getElementById(spec.getAttribute("data-chart"));
    Plotly.newPlot(target, figure.data, figure.layout, config);
    drawn.push(target);
  });
  // Printed pages fit the charts to the paper.
  window.addEventListener("beforeprint", function () {
    drawn.forEach(function (target) { Plotly.Plots.resize(target); });
  });
})();
