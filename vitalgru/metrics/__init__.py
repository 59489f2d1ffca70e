"""vitalgru.metrics"""

from vitalgru.metrics.aami import aami_metrics as aami_metrics
from vitalgru.metrics.aami import aami_metrics_by_record as aami_metrics_by_record
from vitalgru.metrics.aami import aami_report as aami_report
from vitalgru.metrics.aami import cohen_kappa as cohen_kappa
from vitalgru.metrics.aami import confusion_matrix as confusion_matrix
from vitalgru.metrics.aami import metrics_from_confusion as metrics_from_confusion
from vitalgru.metrics.early_warning import alarm_statistics as alarm_statistics
from vitalgru.metrics.early_warning import early_warning_metrics as early_warning_metrics
from vitalgru.metrics.ranking import auprc as auprc
from vitalgru.metrics.ranking import auroc as auroc
from vitalgru.metrics.utility import best_threshold as best_threshold
from vitalgru.metrics.utility import normalized_utility as normalized_utility
from vitalgru.metrics.utility import patient_utility as patient_utility
