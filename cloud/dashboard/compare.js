/* Boucle dashboard: an indicator card's change against another period (compare=previous|year).
   Green when the change goes the better way (direction in cloud/references.toml), red the worse. */
"use strict";
window.BoucleCompare = {
  changeLine(change, t, number) {
    const p = document.createElement("p");
    const way = change.improved === true ? "better" : change.improved === false ? "worse" : "same";
    p.className = `change change-${way}`;
    const signed = v => (v > 0 ? "+" : "") + number(v);
    if (change.delta === null) {
      p.textContent = `${t(`compare_${change.compare}`)} : ${number(change.value)}`;
      return p;
    }
    p.textContent = t("change_vs", {
      delta: signed(change.delta),
      pct: change.delta_pct === null ? "—" : `${signed(change.delta_pct)} %`,
      was: number(change.value),
    });
    p.title = `${t(`compare_${change.compare}`)} · ${t(`change_${way}`)}`;
    return p;
  },
};
