package host

import (
	"context"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// StorageClass is the default StorageClass of an embedded host, named as
// kind's and minikube's are, so that manifests written for those find it.
// Its claims are bound at once to hostPath volumes that exist only on paper:
// no pod of a simulated node ever mounts anything.
const (
	StorageClass = "standard"
	provisioner  = "vmatrix.io/local"
	// provisionedBy is the annotation the PV controller reads to tell
	// provisioned volumes from pre-made ones.
	provisionedBy = "pv.kubernetes.io/provisioned-by"
)

// localProvisioner makes a volume for every pending claim of StorageClass and
// deletes the volumes it made once they are released.
type localProvisioner struct {
	client  kubernetes.Interface
	factory informers.SharedInformerFactory
	stop    chan struct{}
}

func startProvisioner(ctx context.Context, client kubernetes.Interface) (*localProvisioner, error) {
	immediate, del := storagev1.VolumeBindingImmediate, corev1.PersistentVolumeReclaimDelete
	_, err := client.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        StorageClass,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner: provisioner, ReclaimPolicy: &del, VolumeBindingMode: &immediate,
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	p := &localProvisioner{client: client, stop: make(chan struct{})}
	// The resync retries what failed; a test host needs no more than that.
	p.factory = informers.NewSharedInformerFactory(client, 10*time.Second)
	claims := p.factory.Core().V1().PersistentVolumeClaims().Informer()
	volumes := p.factory.Core().V1().PersistentVolumes().Informer()
	onClaim := func(obj any) {
		if c, ok := obj.(*corev1.PersistentVolumeClaim); ok {
			p.provision(c)
		}
	}
	onVolume := func(obj any) {
		if v, ok := obj.(*corev1.PersistentVolume); ok {
			p.reclaim(v)
		}
	}
	if _, err := claims.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onClaim, UpdateFunc: func(_, o any) { onClaim(o) }}); err != nil {
		return nil, err
	}
	if _, err := volumes.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onVolume, UpdateFunc: func(_, o any) { onVolume(o) }}); err != nil {
		return nil, err
	}
	p.factory.Start(p.stop)
	p.factory.WaitForCacheSync(ctx.Done())
	return p, nil
}

func (p *localProvisioner) provision(c *corev1.PersistentVolumeClaim) {
	if c.Spec.VolumeName != "" || c.Status.Phase != corev1.ClaimPending || c.DeletionTimestamp != nil ||
		c.Spec.StorageClassName == nil || *c.Spec.StorageClassName != StorageClass {
		return
	}
	size := c.Spec.Resources.Requests[corev1.ResourceStorage]
	modes := c.Spec.AccessModes
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-" + string(c.UID), Annotations: map[string]string{provisionedBy: provisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes: modes, VolumeMode: c.Spec.VolumeMode,
			StorageClassName:              StorageClass,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			// Pre-bound to the claim; the host's PV controller completes the binding.
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: c.Namespace, Name: c.Name, UID: c.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: filepath.Join("/var/lib/vmatrix/volumes", string(c.UID))},
			},
		},
	}
	_, _ = p.client.CoreV1().PersistentVolumes().Create(context.Background(), pv, metav1.CreateOptions{})
}

func (p *localProvisioner) reclaim(v *corev1.PersistentVolume) {
	if v.Annotations[provisionedBy] != provisioner || v.Status.Phase != corev1.VolumeReleased || v.DeletionTimestamp != nil {
		return
	}
	uid := v.UID
	_ = p.client.CoreV1().PersistentVolumes().Delete(context.Background(), v.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
}

func (p *localProvisioner) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
		p.factory.Shutdown()
	}
}
