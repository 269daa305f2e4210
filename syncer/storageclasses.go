package syncer

import (
	"context"
	"maps"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
)

// The host's StorageClasses are mirrored into the virtual cluster, as
// vCluster does by default: `kubectl get storageclass` lists the classes
// the host provisions, a claim may name one, and the host's default class is
// the virtual cluster's (its apiserver then fills a claim's class in, as a
// real cluster's does). A class made in the virtual cluster is the user's,
// under any name, and is left alone. A syncer whose host rights do not reach
// StorageClasses mirrors none.

func (s *Syncer) setupStorageClasses(ctx context.Context) error {
	_, err := s.host.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{Limit: 1})
	if apierrors.IsForbidden(err) {
		s.log.Info("not mirroring the host's StorageClasses: no right to read them")
		return nil
	}
	c := s.newController("storageclasses", 1, s.syncStorageClass)
	s.storageClasses = c
	if _, err := s.hNod.Storage().V1().StorageClasses().Informer().AddEventHandler(handler(c.byKey)); err != nil {
		return err
	}
	_, err = s.vInf.Storage().V1().StorageClasses().Informer().AddEventHandler(handler(c.byKey))
	return err
}

// isDefaultClass says whether c is marked as its cluster's default, by the
// annotation or its beta form, as the apiserver's admission reads them.
func isDefaultClass(c *storagev1.StorageClass) bool {
	return c.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" ||
		c.Annotations["storageclass.beta.kubernetes.io/is-default-class"] == "true"
}

// mirrorDefaultClasses mirrors the host's default class before the syncer
// counts as running, so that a claim made right after the cluster is Ready
// gets it, as in a real cluster, where the admission plugin fills the class
// in at once (from the apiserver's own cache, which the syncer's informer
// trails or leads by moments). It waits for that informer to show the copy,
// so that the controller does not make it a second time. A failure is the
// controller's to retry.
func (s *Syncer) mirrorDefaultClasses(ctx context.Context) {
	if s.storageClasses == nil {
		return
	}
	classes, _ := s.hNod.Storage().V1().StorageClasses().Lister().List(labels.Everything())
	for _, c := range classes {
		if !isDefaultClass(c) {
			continue
		}
		err := s.syncStorageClass(ctx, c.Name)
		if err == nil {
			err = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
				_, err := s.vInf.Storage().V1().StorageClasses().Lister().Get(c.Name)
				_, gone := s.hNod.Storage().V1().StorageClasses().Lister().Get(c.Name)
				return err == nil || gone != nil, nil // gone from the host meanwhile: nothing to wait for
			})
		}
		if err != nil {
			s.log.Info("mirroring the host's default StorageClass before the start; the controller retries", "class", c.Name, "err", err)
		}
	}
}

// syncStorageClass makes virtual StorageClass name mirror the host's class
// of that name, while there is one.
func (s *Syncer) syncStorageClass(ctx context.Context, name string) error {
	h, err := notFound(s.hNod.Storage().V1().StorageClasses().Lister().Get(name))
	if err != nil {
		return err
	}
	v, err := notFound(s.vInf.Storage().V1().StorageClasses().Lister().Get(name))
	if err != nil || (v != nil && v.Labels[LabelManagedBy] != s.opts.Name) {
		return err
	}
	api := s.virtual.StorageV1().StorageClasses()
	if v != nil && (h == nil || !sameProvisioning(v, h)) {
		// Gone from the host, or changed in what cannot be updated.
		uid := v.UID
		if err := api.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsConflict(err) {
			return ignoreGone(err)
		}
		v = nil
	}
	if h == nil {
		return nil
	}
	desired := mirroredClass(h, s.opts.Name)
	if v == nil {
		_, err := api.Create(ctx, desired, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // the informer will show it, and queue it again
		}
		return err
	}
	if equality.Semantic.DeepEqual(v.Labels, desired.Labels) && equality.Semantic.DeepEqual(v.Annotations, desired.Annotations) &&
		equality.Semantic.DeepEqual(v.AllowVolumeExpansion, desired.AllowVolumeExpansion) {
		return nil
	}
	cp := v.DeepCopy()
	cp.Labels, cp.Annotations, cp.AllowVolumeExpansion = desired.Labels, desired.Annotations, desired.AllowVolumeExpansion
	_, err = api.Update(ctx, cp, metav1.UpdateOptions{})
	return err
}

// mirroredClass is the virtual copy of host class h.
func mirroredClass(h *storagev1.StorageClass, cluster string) *storagev1.StorageClass {
	labels := maps.Clone(h.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelManagedBy] = cluster
	annotations := maps.Clone(h.Annotations)
	delete(annotations, "kubectl.kubernetes.io/last-applied-configuration")
	return &storagev1.StorageClass{
		ObjectMeta:  metav1.ObjectMeta{Name: h.Name, Labels: labels, Annotations: annotations},
		Provisioner: h.Provisioner, Parameters: h.Parameters, ReclaimPolicy: h.ReclaimPolicy,
		MountOptions: h.MountOptions, AllowVolumeExpansion: h.AllowVolumeExpansion,
		VolumeBindingMode: h.VolumeBindingMode, AllowedTopologies: h.AllowedTopologies,
	}
}

// sameProvisioning reports whether two classes agree in every field an
// update may not change.
func sameProvisioning(a, b *storagev1.StorageClass) bool {
	return a.Provisioner == b.Provisioner && equality.Semantic.DeepEqual(a.Parameters, b.Parameters) &&
		equality.Semantic.DeepEqual(a.ReclaimPolicy, b.ReclaimPolicy) && equality.Semantic.DeepEqual(a.VolumeBindingMode, b.VolumeBindingMode) &&
		equality.Semantic.DeepEqual(a.MountOptions, b.MountOptions) && equality.Semantic.DeepEqual(a.AllowedTopologies, b.AllowedTopologies)
}
