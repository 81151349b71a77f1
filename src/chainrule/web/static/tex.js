// Formulas one hover away: any element with data-tex (TeX source) or data-texkey (a key of
// CR.TEX, resolved at hover time so it follows the current settings) shows a KaTeX tooltip.
"use strict";
window.CR = window.CR || {};

CR.OPT_TEX = {
  sgd: String.raw`g = \nabla_\theta J(\theta),\quad \theta \leftarrow \theta - \eta\, g`,
  momentum: String.raw`b \leftarrow \mu\, b + g,\quad \theta \leftarrow \theta - \eta\, b`,
  nesterov: String.raw`b \leftarrow \mu\, b + g,\quad \theta \leftarrow \theta - \eta\,(g + \mu\, b)`,
  adagrad: String.raw`G \leftarrow G + g^2,\quad \theta \leftarrow \theta - \frac{\eta}{\sqrt{G} + \epsilon}\, g`,
  rmsprop: String.raw`E[g^2] \leftarrow \alpha E[g^2] + (1-\alpha) g^2,\quad \theta \leftarrow \theta - \frac{\eta\, g}{\sqrt{E[g^2]} + \epsilon}`,
  adam: String.raw`\begin{aligned} m &\leftarrow \beta_1 m + (1-\beta_1) g, & v &\leftarrow \beta_2 v + (1-\beta_2) g^2\\ \hat m &= \frac{m}{1-\beta_1^t}, & \hat v &= \frac{v}{1-\beta_2^t},\quad \theta \leftarrow \theta - \eta \frac{\hat m}{\sqrt{\hat v} + \epsilon}\end{aligned}`,
  newton: String.raw`d = -(H + \lambda I)^{-1} g,\ H = \nabla^2_\theta J \text{ (exact, full batch)},\ \theta \leftarrow \theta + t\, d \text{ (Armijo: } t = \eta, \eta/2, \ldots)`,
};

CR.ACT_TEX = {
  relu: String.raw`g(z) = \max(0, z)`, tanh: String.raw`g(z) = \tanh z`,
  sigmoid: String.raw`g(z) = \sigma(z) = \frac{1}{1 + e^{-z}}`, linear: String.raw`g(z) = z`,
};
CR.ACT_NAME = { relu: String.raw`\operatorname{relu}`, tanh: String.raw`\tanh`, sigmoid: String.raw`\sigma`, linear: "" };

CR.LOSS_TEX = {
  binary: String.raw`\ell(z, y) = -y \log \sigma(z) - (1-y)\log(1 - \sigma(z))`,
  multi: String.raw`\ell(z, y) = -\log \operatorname{softmax}(z)_y`,
  regression: String.raw`\ell(z, y) = (z - y)^2`,
};

CR.lossKind = () => (CR.task === "regression" ? "regression" : CR.nClasses > 2 ? "multi" : "binary");

CR.TEX = {
  optimizer: () => CR.OPT_TEX[CR.config.optimizer] || "",
  schedule: () => ({
    constant: String.raw`\eta_t = \eta`, step: String.raw`\eta_t = \eta \cdot 0.5^{\lfloor t / 500 \rfloor}`,
    exponential: String.raw`\eta_t = \eta \cdot 0.999^{t}`,
    cosine: String.raw`\eta_t = \tfrac{\eta}{2}\left(1 + \cos \tfrac{\pi t}{2000}\right)`,
  })[CR.config.schedule],
  activation: () => CR.ACT_TEX[CR.config.activation],
  regularization: () => String.raw`J(\theta) = \frac{1}{B}\sum_{i} \ell_i + \lambda R(W),\quad ` +
    (CR.config.regularization === "l1" ? String.raw`R(W) = \sum |W_{jk}|` : String.raw`R(W) = \tfrac12 \sum \|W\|_F^2`),
  dropout: () => String.raw`\tilde h = h \odot m / (1 - p),\quad m_j \sim \text{Bernoulli}(1 - p) \text{ (training only)}`,
  dataset: () => String.raw`\text{points rescaled so that } \max |x_k| = 3`,
  network: () => String.raw`h^{(l)} = g\!\left(W^{(l)} h^{(l-1)} + b^{(l)}\right),\ h^{(0)} = \phi(x),\ z = W^{(L+1)} h^{(L)} + b^{(L+1)}`,
  "train-loss": () => String.raw`\frac{1}{n_{\text{train}}} \sum_{i \in \text{train}} \ell\big(f_\theta(\phi(x_i)), y_i\big),\quad ` + CR.LOSS_TEX[CR.lossKind()],
  "test-loss": () => String.raw`\frac{1}{n_{\text{test}}} \sum_{i \in \text{test}} \ell\big(f_\theta(\phi(x_i)), y_i\big)`,
  "loss-chart": () => String.raw`\text{train (dark) and test (orange) loss against } t`,
  boundary: () => CR.task === "regression" ? String.raw`\hat y(x) = f_\theta(\phi(x))` :
    CR.nClasses > 2 ? String.raw`\hat y = \arg\max_k \operatorname{softmax}(z)_k \text{ (paler: less sure)}` :
    String.raw`P(y = 1 \mid x) = \sigma(z(x)) \text{: orange } 0 \text{, blue } 1`,
};

CR.texOf = (el) => {
  if (el.dataset.tex) return el.dataset.tex;
  const f = CR.TEX[el.dataset.texkey];
  return f ? f() : "";
};

CR.renderTex = (el, tex, display) => {
  try {
    katex.render(tex, el, { throwOnError: false, displayMode: !!display });
  } catch (e) {
    el.textContent = tex;
  }
};

CR.showTip = (tex, x, y) => {
  const tip = document.getElementById("tip");
  if (!tex) { tip.hidden = true; return; }
  if (tip.dataset.src !== tex) { CR.renderTex(tip, tex, true); tip.dataset.src = tex; }
  tip.hidden = false;
  const w = tip.offsetWidth, h = tip.offsetHeight;
  tip.style.left = Math.max(4, Math.min(window.innerWidth - w - 8, x + 14)) + "px";
  tip.style.top = (y + h + 24 > window.innerHeight ? y - h - 12 : y + 18) + window.scrollY + "px";
};

CR.initTips = () => {
  document.addEventListener("mousemove", (ev) => {
    const el = ev.target.closest && ev.target.closest("[data-tex],[data-texkey]");
    if (el && el.dataset.texkey !== "network-canvas") CR.showTip(CR.texOf(el), ev.clientX, ev.clientY);
    else if (!CR.canvasTip) CR.showTip("", 0, 0);
  });
};
