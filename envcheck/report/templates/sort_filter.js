{# The page's one inline script: click a header to sort, type in the box above a table to filter its rows.
   Rendered on its own to hash it for the CSP; it reads the page and never writes HTML. A row may have
   fewer cells than headers (one cell spans two columns): it sorts as empty. No comments below: the text
   is the page's, and a page must not contain '//' outside the SVG namespace. #}
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, column) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows), up = th.dataset.dir !== 'up';
      var key = function (row) {
        var cell = row.cells[column];
        return cell ? (cell.dataset.sort || cell.textContent) : '';
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? order : -order;
      });
      th.dataset.dir = up ? 'up' : 'down';
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
document.querySelectorAll('input.filter').forEach(function (input) {
  input.addEventListener('input', function () {
    var table = document.getElementById(input.dataset.table), text = input.value.toLowerCase();
    Array.from(table.tBodies[0].rows).forEach(function (row) {
      row.style.display = row.textContent.toLowerCase().indexOf(text) >= 0 ? '' : 'none';
    });
  });
});
