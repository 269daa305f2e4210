package incluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"helm.sh/helm/v3/pkg/action"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/kubeconfig"
	"github.com/vmatrix/vmatrix/syncer"
)

// Host is the cluster a release goes into: a kubeconfig file and a context
// in it ("" for the current one).
type Host struct {
	Kubeconfig string
	Context    string
}

// LabelNamespace marks a namespace that Install created for a release (value:
// the release name); Uninstall deletes only such a namespace.
const LabelNamespace = "vmatrix.io/in-cluster"

// InstallOptions tune Install.
type InstallOptions struct {
	// Wait waits until the StatefulSet's pod is ready and the kubeconfig
	// Secret is filled, at most Timeout (default 5 minutes).
	Wait    bool
	Timeout time.Duration
}

func (h Host) client() (kubernetes.Interface, error) {
	cfg, err := kubeconfig.Load(h.Kubeconfig, h.Context)
	if err != nil {
		return nil, err
	}
	// Uninstall reads v1 Endpoints on purpose: the syncer writes them.
	cfg.WarningHandler = rest.NoWarnings{}
	return kubernetes.NewForConfig(cfg)
}

// actionConfig is a Helm action configuration for namespace of h, keeping
// release records in Secrets as the helm CLI does.
func (h Host) actionConfig(namespace string) (*action.Configuration, error) {
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Context, flags.Namespace = &h.Kubeconfig, &h.Context, &namespace
	cfg := &action.Configuration{}
	if err := cfg.Init(flags, namespace, "secret", func(string, ...any) {}); err != nil {
		return nil, fmt.Errorf("helm on %s: %w", h.Kubeconfig, err)
	}
	return cfg, nil
}

// Install installs the chart for r on host h, creating r.Namespace (labelled,
// so Uninstall deletes it again) if it does not exist.
func Install(ctx context.Context, h Host, r Release, opts InstallOptions) error {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	client, err := h.client()
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: r.Namespace, Labels: map[string]string{LabelNamespace: r.Name},
	}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", r.Namespace, err)
	}
	c, err := Chart()
	if err != nil {
		return err
	}
	cfg, err := h.actionConfig(r.Namespace)
	if err != nil {
		return err
	}
	inst := action.NewInstall(cfg)
	inst.ReleaseName, inst.Namespace = r.Name, r.Namespace
	inst.Wait, inst.Timeout = opts.Wait, opts.Timeout
	if _, err := inst.RunWithContext(ctx, c, r.Values); err != nil {
		return fmt.Errorf("installing virtual cluster %s into %s: %w", r.Name, r.Namespace, err)
	}
	if !opts.Wait {
		return nil
	}
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, opts.Timeout, true, func(ctx context.Context) (bool, error) {
		s, err := client.CoreV1().Secrets(r.Namespace).Get(ctx, KubeconfigSecret(r.Name), metav1.GetOptions{})
		return err == nil && len(s.Data["config"]) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the kubeconfig of virtual cluster %s in Secret %s/%s: %w", r.Name, r.Namespace, KubeconfigSecret(r.Name), err)
	}
	return nil
}

// Uninstall removes release name from namespace: the chart's objects, the
// pod and data volume of its StatefulSet, what the syncer made in the
// namespace, and the namespace itself if Install created it. It waits until
// all of that is gone, and does what it can of it when the release itself is
// gone already.
func Uninstall(ctx context.Context, h Host, name, namespace string) error {
	client, err := h.client()
	if err != nil {
		return err
	}
	cfg, err := h.actionConfig(namespace)
	if err != nil {
		return err
	}
	var errs []error
	u := action.NewUninstall(cfg)
	// A release already gone is no error: Uninstall is idempotent.
	u.Wait, u.Timeout, u.IgnoreNotFound = true, 2*time.Minute, true
	if _, err := u.Run(name); err != nil {
		errs = append(errs, fmt.Errorf("uninstalling virtual cluster %s from %s: %w", name, namespace, err))
	}
	errs = append(errs, removeLeftovers(ctx, client, name, namespace))
	return errors.Join(errs...)
}

// removeLeftovers deletes the objects that outlive a helm uninstall: the host
// copies the syncer made (a pod that stops does not remove them, so that a
// restarted pod takes them over), the StatefulSet's pod and PVC (deleted in
// the background by the garbage collector), and the namespace Install made.
func removeLeftovers(ctx context.Context, client kubernetes.Interface, name, namespace string) error {
	core := client.CoreV1()
	synced := metav1.ListOptions{LabelSelector: syncer.LabelManagedBy + "=" + name}
	ours := metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=vmatrix,app.kubernetes.io/instance=" + name}
	now := metav1.DeleteOptions{GracePeriodSeconds: new(int64)}
	var errs []error
	collect := func(err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	collect(core.Pods(namespace).DeleteCollection(ctx, now, synced))
	collect(core.ConfigMaps(namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, synced))
	collect(core.Secrets(namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, synced))
	collect(core.Endpoints(namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, synced))
	collect(core.PersistentVolumeClaims(namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, synced))
	if svcs, err := core.Services(namespace).List(ctx, synced); err == nil {
		for _, s := range svcs.Items {
			collect(core.Services(namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}))
		}
	} else {
		collect(err)
	}
	// The StatefulSet is gone; its pod need not wait for a graceful stop, as
	// its data volume is going too.
	collect(core.Pods(namespace).DeleteCollection(ctx, now, ours))
	collect(core.PersistentVolumeClaims(namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, ours))
	if len(errs) > 0 {
		return fmt.Errorf("removing what virtual cluster %s left in %s: %w", name, namespace, errors.Join(errs...))
	}
	left := ""
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, sel := range []metav1.ListOptions{synced, ours} {
			pods, err := core.Pods(namespace).List(ctx, sel)
			if err != nil {
				return false, nil
			}
			pvcs, err := core.PersistentVolumeClaims(namespace).List(ctx, sel)
			if err != nil {
				return false, nil
			}
			cms, err := core.ConfigMaps(namespace).List(ctx, sel)
			if err != nil {
				return false, nil
			}
			secrets, err := core.Secrets(namespace).List(ctx, sel)
			if err != nil {
				return false, nil
			}
			svcs, err := core.Services(namespace).List(ctx, sel)
			if err != nil {
				return false, nil
			}
			if n := len(pods.Items) + len(pvcs.Items) + len(cms.Items) + len(secrets.Items) + len(svcs.Items); n > 0 {
				left = fmt.Sprintf("%d pods, %d PVCs, %d ConfigMaps, %d Secrets, %d Services", len(pods.Items), len(pvcs.Items), len(cms.Items), len(secrets.Items), len(svcs.Items))
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for what virtual cluster %s left in %s to go (%s): %w", name, namespace, left, err)
	}
	return deleteOwnNamespace(ctx, client, name, namespace)
}

// deleteOwnNamespace deletes namespace if Install created it for release name,
// and waits until it is gone.
func deleteOwnNamespace(ctx context.Context, client kubernetes.Interface, name, namespace string) error {
	api := client.CoreV1().Namespaces()
	ns, err := api.Get(ctx, namespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Labels[LabelNamespace] != name {
		return nil
	}
	uid := ns.UID
	if err := api.Delete(ctx, namespace, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting namespace %s: %w", namespace, err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := api.Get(ctx, namespace, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for namespace %s to go: %w", namespace, err)
	}
	return nil
}
