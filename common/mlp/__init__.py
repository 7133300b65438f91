"""MLP students over a bag of words: cross-entropy vs cross-entropy + an explanation-matching (XAI) loss.

Question: can a tiny model learn not only BERT's labels but BERT's reasons (its LIME weights)?

Features. A binary bag of words over a vocabulary built from the training texts (scikit-learn
``CountVectorizer``). The tokenisation is LIME's: ``LimeTextExplainer`` splits on ``\\W+``, so a word
is a ``\\w+`` run (``token_pattern=(?u)\\w+``, single characters and digits included). LIME is
case-sensitive ("The" and "the" are two features); the student lower-cases its input, and every
comparison lower-cases both sides the same way: the weights of a word's case variants are **summed**
(removing both variants together is, to first order, the sum of removing each). Binary presence makes
each input dimension exactly what LIME perturbs: removing a word sets its feature from 1 to 0.

Model. ``Linear(V, hidden) -> ReLU -> Dropout -> Linear(hidden, 4)``.

Attribution. **Gradient x input** of the explained class's *centred* logit ``z_c - mean_k z_k``:

* exact for the linear part: a ReLU MLP is piecewise linear, so within the input's linear region
  gradient x input is the exact additive split of the centred logit over the present words (up to the
  bias terms); for binary inputs it is the first-order effect of removing each word - what LIME measures;
* centring removes the softmax's shift invariance (a shift common to all logits changes nothing the
  model predicts, but would change a raw ``z_c`` attribution) and, unlike a probability gradient, does
  not vanish when the student is confident;
* cheap (one backward pass) and differentiable (``create_graph=True``), so it can sit inside the loss.

Explanation loss. ``1 - cosine(attribution, BERT's LIME weights)`` over the vocabulary, per
(instance, explained class) pair; only words present in the text are non-zero on either side. Cosine
is scale-free, which matters because LIME's weights live on the probability scale and the student's
attribution on the logit scale: the loss is zero exactly when the two agree up to a positive factor.
Pairs whose LIME weights are all zero carry no direction and are skipped.

Explained instances. BERT's LIME CSV (``generate_bert_token_explanations_for_mlp``) explains training
rows (``instance_id`` = row number in the train file, every class). A seeded split
(``holdout_seed``, ``holdout_fraction``; the same for every student seed) keeps a share of them out of
the XAI loss: explanation agreement is measured on those held-out instances only. Their *labels* still
train both students by cross-entropy like every other training row, so vanilla and XAI differ only in
the explanation term.

Evaluation. Agreement metrics are :func:`common.explain.similarity.pair_metrics` (Spearman over
the union of both explanations' words, a missing word weighing 0; top-5/10 Jaccard by |weight|), on
the held-out instances, for BERT's predicted class and averaged over all classes; the student is
explained both by its own attribution and by LIME through ``load_classifier`` (BERT's seed and
num_samples, so the perturbed texts are the same). The same agreement on the instances *in* the
loss is reported too: it separates "could not fit BERT's reasons" from "fitted them but did not
generalise". Means and 95 % t-intervals are over student seeds; XAI - vanilla is paired by seed.

Payload ``models/mlp/<name>.pt`` (format ``mlp_bow``, ``torch.load(weights_only=True)``): the
vocabulary (a list of strings), the tokenisation, the hyper-parameters, the seeds and **every seed's
state dict**; :func:`common.models.classifier.load_classifier` returns the first seed's student unless
``seed=`` is passed.
"""

# The modules other packages may import (tests/test_import_graph.py checks it). The student network itself
# is :mod:`common.models.mlp_student` (the loader reads it); this package holds the stages.
__all__ = ["evaluation", "explained", "stages", "training"]
