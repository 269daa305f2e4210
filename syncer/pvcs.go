package syncer

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const kindPVC = "PersistentVolumeClaim"

func (s *Syncer) setupPVCs() (*controller, error) {
	c := s.newController("persistentvolumeclaims", 2, s.syncPVC)
	if _, err := s.vInf.Core().V1().PersistentVolumeClaims().Informer().AddEventHandler(handler(c.byKey)); err != nil {
		return nil, err
	}
	if _, err := s.hInf.Core().V1().PersistentVolumeClaims().Informer().AddEventHandler(handler(c.byVirtualKey(kindPVC))); err != nil {
		return nil, err
	}
	// A volume of ours queues its claim: one whose claim went while the
	// syncer was down is found at its start.
	_, err := s.vInf.Core().V1().PersistentVolumes().Informer().AddEventHandler(handler(func(obj metav1.Object) {
		if pv, ok := obj.(*corev1.PersistentVolume); ok && pv.Labels[LabelManagedBy] == s.opts.Name && pv.Spec.ClaimRef != nil {
			c.add(pv.Spec.ClaimRef.Namespace + "/" + pv.Spec.ClaimRef.Name)
		}
	}))
	return c, err
}

// syncPVC copies a virtual claim down and its status back up. Volumes and
// storage classes are the host's: the claim keeps its class name (none means
// the host's default), and the host binds it. Once the host has bound it, the
// virtual claim is bound to a PersistentVolume of the same name in the
// virtual cluster that stands for the host's (see virtualVolume), as a
// cluster's own binder would bind it.
func (s *Syncer) syncPVC(ctx context.Context, key string) error {
	ns, v, h, err := readBoth[corev1.PersistentVolumeClaim](s, key, s.vInf.Core().V1().PersistentVolumeClaims().Lister().PersistentVolumeClaims, s.hInf.Core().V1().PersistentVolumeClaims().Lister().PersistentVolumeClaims)
	if err != nil {
		return err
	}
	api := s.host.CoreV1().PersistentVolumeClaims(s.opts.HostNamespace)
	// The volumes of claims of this name that are gone go, once their claim
	// is gone: a volume stays Bound while its claim is terminating.
	if err := s.deleteVirtualVolumes(ctx, ns, key, v); err != nil {
		return err
	}
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
	if v.Spec.VolumeName == "" && h.Spec.VolumeName != "" && h.Status.Phase == corev1.ClaimBound {
		if v, err = s.bindVirtualVolume(ctx, v, h); err != nil {
			return ignoreGone(err)
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

// bindVirtualVolume makes the virtual PersistentVolume that stands for the
// host's volume of h, and binds the virtual claim v to it.
func (s *Syncer) bindVirtualVolume(ctx context.Context, v, h *corev1.PersistentVolumeClaim) (*corev1.PersistentVolumeClaim, error) {
	api := s.virtual.CoreV1().PersistentVolumes()
	pv, err := api.Create(ctx, virtualVolume(v, h, s.opts.Name), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		pv, err = api.Get(ctx, h.Spec.VolumeName, metav1.GetOptions{})
	}
	if err != nil {
		return nil, err
	}
	if pv.Labels[LabelManagedBy] != s.opts.Name || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != v.UID {
		return v, nil // a volume of that name that someone else made: left alone
	}
	if pv.Status.Phase != corev1.VolumeBound {
		cp := pv.DeepCopy()
		cp.Status.Phase = corev1.VolumeBound
		if _, err := api.UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
	}
	cp := v.DeepCopy()
	cp.Spec.VolumeName = pv.Name
	if cp.Annotations == nil {
		cp.Annotations = map[string]string{}
	}
	// As the binder marks a claim it has bound.
	cp.Annotations["pv.kubernetes.io/bind-completed"] = "yes"
	cp.Annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
	return s.virtual.CoreV1().PersistentVolumeClaims(v.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
}

// virtualVolume is the PersistentVolume that stands in the virtual cluster
// for the host's volume bound to h, the host copy of claim v: its name,
// capacity and access modes, bound to v. Its source is a placeholder: no
// kubelet of the virtual cluster mounts it, the host's pods use the host's.
func virtualVolume(v, h *corev1.PersistentVolumeClaim, cluster string) *corev1.PersistentVolume {
	capacity := h.Status.Capacity
	if len(capacity) == 0 {
		capacity = v.Spec.Resources.Requests
	}
	modes := h.Status.AccessModes
	if len(modes) == 0 {
		modes = v.Spec.AccessModes
	}
	class := ""
	if v.Spec.StorageClassName != nil {
		class = *v.Spec.StorageClassName
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: h.Spec.VolumeName, Labels: map[string]string{LabelManagedBy: cluster}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      capacity,
			AccessModes:                   modes,
			VolumeMode:                    v.Spec.VolumeMode,
			StorageClassName:              class,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			ClaimRef:                      &corev1.ObjectReference{Kind: kindPVC, APIVersion: "v1", Namespace: v.Namespace, Name: v.Name, UID: v.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/vmatrix/volumes/" + h.Spec.VolumeName},
			},
		},
	}
}

// deleteVirtualVolumes deletes the virtual PersistentVolumes the syncer made
// for claims of the name of key that are gone: all of them when v is nil,
// else those of an earlier claim of that name.
func (s *Syncer) deleteVirtualVolumes(ctx context.Context, ns, key string, v *corev1.PersistentVolumeClaim) error {
	name := key[len(ns)+1:]
	pvs, err := s.vInf.Core().V1().PersistentVolumes().Lister().List(labels.SelectorFromSet(labels.Set{LabelManagedBy: s.opts.Name}))
	if err != nil {
		return err
	}
	api := s.virtual.CoreV1().PersistentVolumes()
	for _, pv := range pvs {
		ref := pv.Spec.ClaimRef
		if ref == nil || ref.Namespace != ns || ref.Name != name || (v != nil && ref.UID == v.UID) || pv.DeletionTimestamp != nil {
			continue
		}
		if pv.Status.Phase == corev1.VolumeBound {
			// As the binder marks a volume whose claim is gone; the
			// pv-protection controller holds a Bound volume's deletion.
			cp := pv.DeepCopy()
			cp.Status.Phase = corev1.VolumeReleased
			if _, err := api.UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
				return ignoreGone(err)
			}
		}
		uid := pv.UID
		if err := api.Delete(ctx, pv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); ignoreGone(err) != nil {
			return err
		}
	}
	return nil
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
