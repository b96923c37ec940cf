// Point RequireJS at the ipywidgets HTML manager served from this site's _static/ folder.
// The manager finds its own fonts relative to the module path RequireJS resolved for it; without
// this it looks for them under "<page folder>/@jupyter-widgets/html-manager/dist/" and fails.
(function () {
  var here = document.currentScript.src;
  var staticRoot = here.slice(0, here.lastIndexOf("/") + 1);
  require.config({
    paths: { "@jupyter-widgets/html-manager/dist": staticRoot + "html-manager" },
  });
})();
