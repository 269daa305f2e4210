package syncer

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const kindPVC = "PersistentVolumeClaim"

func (s *Syncer) setupPVCs() (*controller, error) {
	c := s.newController("persistentvolumeclaims", 2, s.syncPVC)
	if _, err := s.vInf.Core().V1().PersistentVolumeClaims().Informer().AddEventHandler(handler(c.byKey)); err != nil {
		return nil, err
	}
	_, err := s.hInf.Core().V1().PersistentVolumeClaims().Informer().AddEventHandler(handler(c.byVirtualKey(kindPVC)))
	return c, err
}

// syncPVC copies a virtual claim down and its status back up. Volumes and
// storage classes are the host's: the claim keeps its class name (none means
// the host's default), and the host binds it.
func (s *Syncer) syncPVC(ctx context.Context, key string) error {
	ns, v, h, err := readBoth[corev1.PersistentVolumeClaim](s, key, s.vInf.Core().V1().PersistentVolumeClaims().Lister().PersistentVolumeClaims, s.hInf.Core().V1().PersistentVolumeClaims().Lister().PersistentVolumeClaims)
	if err != nil {
		return err
	}
	api := s.host.CoreV1().PersistentVolumeClaims(s.opts.HostNamespace)
	if v == nil || v.DeletionTimestamp != nil {
		// A terminating claim waits in the virtual cluster for its pods to go
		// (the pvc-protection finalizer); the host copy goes with it.
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{})
	}
	if h != nil && h.Annotations[AnnotationUID] != string(v.UID) {
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{})
	}
	if h == nil {
		desired := &corev1.PersistentVolumeClaim{ObjectMeta: s.hostMeta(kindPVC, v, v.Labels, nil)}
		desired.Spec = corev1.PersistentVolumeClaimSpec{
			AccessModes: v.Spec.AccessModes, Resources: v.Spec.Resources, StorageClassName: v.Spec.StorageClassName,
			VolumeMode: v.Spec.VolumeMode, VolumeAttributesClassName: v.Spec.VolumeAttributesClassName,
		}
		h, err = ensureHost(ctx, s, api, kindPVC, nil, desired, nil)
		if err != nil {
			return s.reportClash(err, v)
		}
	} else if h.Spec.Resources.Requests.Storage().Cmp(*v.Spec.Resources.Requests.Storage()) < 0 {
		cp := h.DeepCopy() // an expansion
		cp.Spec.Resources.Requests = v.Spec.Resources.Requests
		if h, err = api.Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	if equality.Semantic.DeepEqual(pvcStatusSummary(&v.Status), pvcStatusSummary(&h.Status)) {
		return nil
	}
	cp := v.DeepCopy()
	cp.Status.Phase, cp.Status.AccessModes, cp.Status.Capacity = h.Status.Phase, h.Status.AccessModes, h.Status.Capacity
	_, err = s.virtual.CoreV1().PersistentVolumeClaims(ns).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	return ignoreGone(err)
}

type pvcStatusView struct {
	Phase       corev1.PersistentVolumeClaimPhase
	AccessModes []corev1.PersistentVolumeAccessMode
	Capacity    corev1.ResourceList
}

func pvcStatusSummary(st *corev1.PersistentVolumeClaimStatus) pvcStatusView {
	return pvcStatusView{st.Phase, st.AccessModes, st.Capacity}
}

var pvcKind = hostKind{
	resource: "persistentvolumeclaims",
	list: func(c kubernetes.Interface, ns string) listFunc {
		return lister(c.CoreV1().PersistentVolumeClaims(ns).List)
	},
	deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
		return s.host.CoreV1().PersistentVolumeClaims(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
	},
	setup: (*Syncer).setupPVCs,
	informer: func(s *Syncer) cache.SharedIndexInformer {
		return s.vInf.Core().V1().PersistentVolumeClaims().Informer()
	},
}
