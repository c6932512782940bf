"""Representation similarity metrics between two spaces over the same atoms (rows): one class per metric, one
module per metric, and the building blocks they share.

A metric's class (``base.Metric``) holds its registry facts, what it needs of a model's summary, its value, its
bootstrap replicates and its chance level; ``platonic.compare.registry`` lists the classes. What a pair's metrics
share is a lazily cached ``pair.Pair`` (cross Gram, replicate sums, CKNNA kernels, permuted pairs), as ``Features``
caches what one space's share. Three kinds, by what they need:

- second moments (d x d Gram and cross-covariance matrices, streamed over row chunks, ``moments``): linear CKA,
  debiased CKA, SVCCA, orthogonal Procrustes, GFRE. Memory grows with d, never with N.
- neighbour lists (N x k, from ``platonic.compare.neighbours``; ``neighbour_lists``): mutual k-NN, CKNNA,
  TwoNN intrinsic dimension (or its own Euclidean lists), LFRE, information imbalance (queries, ranks over all N).
- a seeded subsample (inherently quadratic, ``distances``): distance correlation, RSA, optimal transport.

Every function takes arrays and returns numbers; inputs are ``(N, d)`` with the same N rows. The one-call forms
(``linear_cka(x, y)``, ``gfre(x, y, train)``, exact ``knn_indices``, ...) that the tests check these pieces against
are in ``platonic.compare.oracle``.
"""

from platonic.compare.metrics.base import ATOMS, Facts, Metric, MomentMetric, TermMetric
from platonic.compare.metrics.cknna import (
    Cknna,
    OwnKernel,
    cknna_from_kernels,
    cknna_kernels,
    cknna_shared_kernels,
    own_kernel,
    weighted_cknna,
    weighted_sparse_hsic,
)
from platonic.compare.metrics.debiased_cka import DebiasedCka, debiased_cka_from_moments
from platonic.compare.metrics.distance_correlation import (
    DistanceCorrelation,
    distance_correlation_from_distances,
    weighted_distance_correlations,
)
from platonic.compare.metrics.distances import distance_matrix
from platonic.compare.metrics.features import CHUNK, RANK_TOLERANCE, ROW_CHUNK, Features, features
from platonic.compare.metrics.gfre import (
    Gfre,
    RidgeFolds,
    SplitMoments,
    gfre_from_moments,
    gfre_replicates,
    gfre_ridge_cv,
    ridge_folds,
    split_crosses,
    split_moments,
)
from platonic.compare.metrics.information_imbalance import InformationImbalance, information_imbalance, neighbour_ranks
from platonic.compare.metrics.lfre import Lfre, lfre_errors, lfre_errors_chosen, lfre_ridge_cv
from platonic.compare.metrics.linear_cka import LinearCka, cka_from_covariances
from platonic.compare.metrics.moments import Moments, centred_cross, cross_gram, moments
from platonic.compare.metrics.mutual_knn import MutualKnn, mutual_knn_alignment, permuted_mutual_knn
from platonic.compare.metrics.neighbour_lists import neighbour_cosines, neighbour_distances, shared_neighbours
from platonic.compare.metrics.optimal_transport import OT_COSTS, OptimalTransport, optimal_transport_distance
from platonic.compare.metrics.pair import CHANCE_QUERIES, Pair
from platonic.compare.metrics.procrustes import Procrustes, procrustes_from_covariances
from platonic.compare.metrics.rsa import Rsa, rsa_from_distances, weighted_rsa
from platonic.compare.metrics.svcca import (
    Svcca,
    principal_directions_count,
    svcca_from_covariances,
    svcca_from_whitening,
    svcca_max_directions,
    svcca_whitening,
)
from platonic.compare.metrics.twonn import (
    TWONN_DISTANCES,
    TWONN_DUPLICATES,
    twonn_dimension,
    twonn_fit,
    twonn_ratios,
)

__all__ = [
    "ATOMS", "CHANCE_QUERIES", "CHUNK", "OT_COSTS", "RANK_TOLERANCE", "ROW_CHUNK", "TWONN_DISTANCES",
    "TWONN_DUPLICATES", "Cknna", "DebiasedCka", "DistanceCorrelation", "Facts", "Features", "Gfre",
    "InformationImbalance", "Lfre", "LinearCka", "Metric", "MomentMetric", "Moments", "MutualKnn", "OptimalTransport",
    "OwnKernel", "Pair", "Procrustes", "RidgeFolds", "Rsa", "SplitMoments", "Svcca", "TermMetric", "centred_cross",
    "cka_from_covariances", "cknna_from_kernels", "cknna_kernels", "cknna_shared_kernels", "cross_gram",
    "debiased_cka_from_moments", "distance_correlation_from_distances", "distance_matrix", "features",
    "gfre_from_moments", "gfre_replicates", "gfre_ridge_cv", "information_imbalance", "lfre_errors",
    "lfre_errors_chosen", "lfre_ridge_cv", "moments", "mutual_knn_alignment", "neighbour_cosines",
    "neighbour_distances", "neighbour_ranks", "optimal_transport_distance", "own_kernel", "permuted_mutual_knn",
    "principal_directions_count", "procrustes_from_covariances", "ridge_folds", "rsa_from_distances",
    "shared_neighbours", "split_crosses", "split_moments", "svcca_from_covariances", "svcca_from_whitening",
    "svcca_max_directions", "svcca_whitening", "twonn_dimension", "twonn_fit", "twonn_ratios",
    "weighted_cknna", "weighted_distance_correlations", "weighted_rsa", "weighted_sparse_hsic",
]  # fmt: skip
