package syncer_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/virtual"
	"github.com/vmatrix/vmatrix/syncer"
)

// TestSync runs workloads in one virtual cluster per version and checks both
// sides, then deletes the cluster and checks that nothing is left on the host.
func TestSync(t *testing.T) {
	needsHost(t)
	for _, version := range versions() {
		t.Run(version, func(t *testing.T) {
			name := "v" + strings.ReplaceAll(version, ".", "")
			vc := startVirtual(t, name, version, func(o *syncer.Options) { o.Sync = []string{"ingresses", "networkpolicies"} })
			v := clientFor(vc.RESTConfig())
			env := &virtualEnv{vc: vc, v: v, ns: vc.HostNamespace(), name: name}
			t.Run("Nodes", env.testNodes)
			t.Run("NodeLabels", env.testNodeLabels)
			t.Run("Drain", env.testDrain)
			t.Run("Deployment", env.testDeployment)
			t.Run("Service", env.testService)
			t.Run("ServiceIPTaken", env.testServiceIPTaken)
			t.Run("ConfigMapSecret", env.testConfigMapSecret)
			t.Run("Job", env.testJob)
			t.Run("PVC", env.testPVC)
			t.Run("StorageClasses", env.testStorageClasses)
			t.Run("StaysVirtual", env.testStaysVirtual)
			t.Run("Policy", env.testPolicy)
			t.Run("NameClash", env.testNameClash)
			t.Run("Ingress", env.testIngress)
			t.Run("NetworkPolicy", env.testNetworkPolicy)
			t.Run("Teardown", env.testTeardown)
		})
	}
}

type virtualEnv struct {
	vc   *virtual.Cluster
	v    kubernetes.Interface
	ns   string // host namespace
	name string
}

func (e *virtualEnv) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	return kubectl(t, e.vc.KubeconfigPath(), stdin, args...)
}

func (e *virtualEnv) namespace(t *testing.T, ns string) {
	t.Helper()
	if _, err := e.v.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// Pods need the namespace's default ServiceAccount, which a controller makes.
	eventually(t, 30*time.Second, "default service account", func(ctx context.Context) (bool, string) {
		_, err := e.v.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
}

func (e *virtualEnv) testNodes(t *testing.T) {
	eventually(t, 30*time.Second, "the host's nodes in the virtual cluster, Ready and untainted", func(ctx context.Context) (bool, string) {
		nodes, err := e.v.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, taint := range n.Spec.Taints {
				if taint.Key == corev1.TaintNodeNotReady {
					return false, n.Name + " has the not-ready taint"
				}
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == 3 && len(nodes.Items) == 3, fmt.Sprintf("%d nodes, %d Ready", len(nodes.Items), ready)
	})
	out := e.kubectl(t, "", "get", "nodes")
	t.Logf("kubectl get nodes:\n%s", out)
	// A simulated node's kubelet is of the virtual cluster's version, as a
	// kind cluster's nodes are, not KWOK's "kwok-v0.7.0"; on the host, of
	// the host's.
	version, err := e.v.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	hostVersion, err := hostClient.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	hostOut := kubectl(t, testHost.KubeconfigPath(), "", "get", "nodes")
	for i := 0; i < 3; i++ {
		line := lineWith(out, fmt.Sprintf("vmatrix-node-%d ", i))
		if !strings.Contains(line, " Ready ") || !strings.HasSuffix(line, " "+version.GitVersion) {
			t.Errorf("vmatrix-node-%d not listed Ready with kubelet %s: %q", i, version.GitVersion, line)
		}
		if line := lineWith(hostOut, fmt.Sprintf("vmatrix-node-%d ", i)); !strings.HasSuffix(line, " "+hostVersion.GitVersion) {
			t.Errorf("host node vmatrix-node-%d not listed with kubelet %s: %q", i, hostVersion.GitVersion, line)
		}
	}
}

func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - {name: http, containerPort: 8080}
`

func (e *virtualEnv) testDeployment(t *testing.T) {
	e.namespace(t, "shop")
	e.kubectl(t, deployment, "apply", "-f", "-")
	e.kubectl(t, "", "-n", "shop", "wait", "--for=condition=Available", "deployment/web", "--timeout=90s")

	ctx := context.Background()
	vpods, err := e.v.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	hpods, err := hostClient.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web," + syncer.LabelNamespace + "=shop"})
	if err != nil {
		t.Fatal(err)
	}
	if len(vpods.Items) != 3 || len(hpods.Items) != 3 {
		t.Fatalf("%d virtual and %d host pods, want 3 and 3", len(vpods.Items), len(hpods.Items))
	}
	byName := map[string]corev1.Pod{}
	for _, h := range hpods.Items {
		byName[h.Name] = h
	}
	out := e.kubectl(t, "", "-n", "shop", "get", "pods", "-o", "wide")
	t.Logf("kubectl get pods -o wide:\n%s", out)
	for _, p := range vpods.Items {
		hostName := p.Name + "-x-shop-x-" + e.name
		h, ok := byName[hostName]
		if !ok {
			t.Errorf("no host pod %s for %s", hostName, p.Name)
			continue
		}
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" || p.Spec.NodeName != h.Spec.NodeName || p.Status.PodIP == "" || p.Status.PodIP != h.Status.PodIP {
			t.Errorf("virtual pod %s: phase %s node %q IP %q; host: node %q IP %q", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP, h.Spec.NodeName, h.Status.PodIP)
		}
		line := lineWith(out, p.Name)
		for _, want := range []string{"Running", h.Status.PodIP, h.Spec.NodeName} {
			if !strings.Contains(line, want) {
				t.Errorf("kubectl get pods -o wide: %q lacks %q", line, want)
			}
		}
		// What the host must not add: its own token, service links.
		if h.Spec.AutomountServiceAccountToken == nil || *h.Spec.AutomountServiceAccountToken || h.Spec.EnableServiceLinks == nil || *h.Spec.EnableServiceLinks {
			t.Errorf("host pod %s: automount %v, service links %v", h.Name, h.Spec.AutomountServiceAccountToken, h.Spec.EnableServiceLinks)
		}
	}
	// The start of each container is told once, in the virtual cluster, as a
	// kubelet tells it; the simulated kubelet writes none of it on the host.
	evs, err := e.v.CoreV1().Events("shop").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range vpods.Items {
		got := map[string]int{}
		for _, ev := range evs.Items {
			if ev.InvolvedObject.UID == p.UID && ev.Source.Component == "kubelet" {
				got[ev.Reason]++
				if ev.InvolvedObject.FieldPath != "spec.containers{web}" || ev.Source.Host != p.Spec.NodeName {
					t.Errorf("%s event of %s: on %q, from %q", ev.Reason, p.Name, ev.InvolvedObject.FieldPath, ev.Source.Host)
				}
			}
		}
		if got["Pulled"] != 1 || got["Created"] != 1 || got["Started"] != 1 {
			t.Errorf("the kubelet's events of %s: %v, want one each of Pulled, Created, Started", p.Name, got)
		}
	}
	hevs, err := hostClient.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range hevs.Items {
		if ev.Reason == "Pulled" || ev.Reason == "Created" || ev.Reason == "Started" {
			t.Errorf("a %s event on the host, about %s", ev.Reason, ev.InvolvedObject.Name)
		}
	}
	// The host scheduler's event reaches the virtual pod, with virtual names.
	eventually(t, 30*time.Second, "a Scheduled event on a virtual pod", func(ctx context.Context) (bool, string) {
		evs, err := e.v.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "reason=Scheduled"})
		if err != nil {
			return false, err.Error()
		}
		for _, ev := range evs.Items {
			if ev.InvolvedObject.Name == vpods.Items[0].Name {
				if strings.Contains(ev.Message, "-x-") {
					return false, "host names in message: " + ev.Message
				}
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d Scheduled events", len(evs.Items))
	})
}

const service = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
`

func (e *virtualEnv) testService(t *testing.T) {
	e.kubectl(t, service, "apply", "-f", "-")
	ctx := context.Background()
	var vsvc, hsvc *corev1.Service
	eventually(t, 30*time.Second, "the host Service", func(ctx context.Context) (bool, string) {
		var err error
		if hsvc, err = hostClient.CoreV1().Services(e.ns).Get(ctx, "web-x-shop-x-"+e.name, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		if vsvc, err = e.v.CoreV1().Services("shop").Get(ctx, "web", metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		return vsvc.Spec.ClusterIP == hsvc.Spec.ClusterIP, fmt.Sprintf("virtual %s, host %s", vsvc.Spec.ClusterIP, hsvc.Spec.ClusterIP)
	})
	t.Logf("cluster IP %s on both sides", vsvc.Spec.ClusterIP)
	if hsvc.Spec.Selector["app"] != "web" || hsvc.Spec.Selector[syncer.LabelNamespace] != "shop" {
		t.Errorf("host selector %v", hsvc.Spec.Selector)
	}
	pods, err := e.v.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range pods.Items {
		want = append(want, p.Status.PodIP)
	}
	slices.Sort(want)
	eventually(t, 30*time.Second, "virtual Endpoints listing the Running pods", func(ctx context.Context) (bool, string) {
		ep, err := e.v.CoreV1().Endpoints("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		var got []string
		for _, s := range ep.Subsets {
			for _, a := range s.Addresses {
				got = append(got, a.IP)
			}
		}
		slices.Sort(got)
		return slices.Equal(got, want), fmt.Sprintf("got %v, want %v", got, want)
	})
	// The host's own controllers find the same pods through the rewritten selector.
	eventually(t, 30*time.Second, "host EndpointSlice", func(ctx context.Context) (bool, string) {
		slices, err := hostClient.DiscoveryV1().EndpointSlices(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + hsvc.Name})
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, s := range slices.Items {
			n += len(s.Endpoints)
		}
		return n == 3, fmt.Sprintf("%d endpoints", n)
	})
}

const configPod = `apiVersion: v1
kind: ConfigMap
metadata: {name: conf, namespace: shop}
data: {greeting: hello}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unused, namespace: shop}
data: {x: "y"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: shop}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: reader, namespace: shop}
spec:
  containers:
  - name: c
    image: busybox
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    volumeMounts:
    - {name: conf, mountPath: /etc/conf}
  volumes:
  - name: conf
    configMap: {name: conf}
`

func (e *virtualEnv) testConfigMapSecret(t *testing.T) {
	e.kubectl(t, configPod, "apply", "-f", "-")
	e.kubectl(t, "", "-n", "shop", "wait", "--for=condition=Ready", "pod/reader", "--timeout=60s")
	ctx := context.Background()
	suffix := "-x-shop-x-" + e.name
	cm, err := hostClient.CoreV1().ConfigMaps(e.ns).Get(ctx, "conf"+suffix, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["greeting"] != "hello" {
		t.Errorf("host ConfigMap data %v", cm.Data)
	}
	sec, err := hostClient.CoreV1().Secrets(e.ns).Get(ctx, "creds"+suffix, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["password"]) != "s3cret" {
		t.Errorf("host Secret data %v", sec.Data)
	}
	if _, err := hostClient.CoreV1().ConfigMaps(e.ns).Get(ctx, "unused"+suffix, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("unreferenced ConfigMap on the host: %v", err)
	}
	// The pod's virtual service account token, in an annotation of the host
	// pod that the pod mounts.
	h, err := hostClient.CoreV1().Pods(e.ns).Get(ctx, "reader"+suffix, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := ""
	for _, vol := range h.Spec.Volumes {
		if vol.Projected != nil {
			for _, src := range vol.Projected.Sources {
				if src.ServiceAccountToken != nil {
					t.Errorf("host pod still asks the host for a token")
				}
				if d := src.DownwardAPI; d != nil && d.Items[0].Path == "token" {
					key := strings.TrimSuffix(strings.TrimPrefix(d.Items[0].FieldRef.FieldPath, "metadata.annotations['"), "']")
					token = h.Annotations[key]
				}
			}
		}
	}
	if token == "" {
		t.Fatalf("no token mounted from the host pod's annotations: %v", h.Spec.Volumes)
	}
	if secrets, err := hostClient.CoreV1().Secrets(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, sec := range secrets.Items {
			if strings.Contains(sec.Name, "sa-token") {
				t.Errorf("a token Secret on the host, %s, besides the annotation", sec.Name)
			}
		}
	}
	review, err := e.v.AuthenticationV1().TokenReviews().Create(ctx, tokenReview(token), metav1.CreateOptions{})
	if err != nil || !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:shop:default" {
		t.Errorf("the token is no virtual service account token: %v %+v", err, review.Status)
	}
	if c := h.Spec.Containers[0]; c.Env[1].ValueFrom.FieldRef.FieldPath != "metadata.annotations['"+syncer.AnnotationName+"']" {
		t.Errorf("downward API name not rewritten: %v", c.Env[1].ValueFrom.FieldRef)
	}
	// Once no pod refers to them, they leave the host.
	e.kubectl(t, "", "-n", "shop", "delete", "pod", "reader", "--wait=true", "--timeout=60s")
	eventually(t, 30*time.Second, "ConfigMap and Secret gone from the host", func(ctx context.Context) (bool, string) {
		_, err1 := hostClient.CoreV1().ConfigMaps(e.ns).Get(ctx, "conf"+suffix, metav1.GetOptions{})
		_, err2 := hostClient.CoreV1().Secrets(e.ns).Get(ctx, "creds"+suffix, metav1.GetOptions{})
		return apierrors.IsNotFound(err1) && apierrors.IsNotFound(err2), fmt.Sprint(err1, err2)
	})
}

const job = `apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: busybox, command: ["true"]}
`

func (e *virtualEnv) testJob(t *testing.T) {
	e.kubectl(t, job, "apply", "-f", "-")
	e.kubectl(t, "", "-n", "shop", "wait", "--for=condition=Complete", "job/once", "--timeout=90s")
}

const pvc = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`

// testPVC: a claim is bound on the host, and in the virtual cluster to a
// PersistentVolume of the host volume's name and size, which stays while
// the terminating claim is in use and goes with the claim; a claim made
// again under that name gets a volume of its own.
func (e *virtualEnv) testPVC(t *testing.T) {
	ctx := context.Background()
	e.kubectl(t, pvc, "apply", "-f", "-")
	pv := e.boundVolume(t)
	e.kubectl(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: user, namespace: shop}\nspec:\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]\n", "apply", "-f", "-")
	e.kubectl(t, "", "-n", "shop", "wait", "--for=condition=Ready", "pod/user", "--timeout=60s")
	e.kubectl(t, "", "-n", "shop", "delete", "pvc", "data", "--wait=false")
	time.Sleep(2 * time.Second) // the syncer's chance to get it wrong
	if got, err := e.v.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{}); err != nil || got.DeletionTimestamp != nil || got.Status.Phase != corev1.VolumeBound {
		t.Errorf("the volume of a terminating claim still in use: %v, %v; want it Bound", got.Status.Phase, err)
	}
	e.kubectl(t, "", "-n", "shop", "delete", "pod", "user", "--wait=false")
	e.volumeGone(t, pv.Name)

	e.kubectl(t, pvc, "apply", "-f", "-")
	if again := e.boundVolume(t); again.Name == pv.Name {
		t.Errorf("the claim made again is bound to the first one's volume %s", pv.Name)
	} else {
		e.kubectl(t, "", "-n", "shop", "delete", "pvc", "data", "--wait=false")
		e.volumeGone(t, again.Name)
	}
}

// boundVolume waits for claim shop/data to be bound, and checks its volume.
func (e *virtualEnv) boundVolume(t *testing.T) *corev1.PersistentVolume {
	t.Helper()
	ctx := context.Background()
	var claim *corev1.PersistentVolumeClaim
	eventually(t, 60*time.Second, "the virtual PVC Bound to a volume", func(ctx context.Context) (bool, string) {
		var err error
		if claim, err = e.v.CoreV1().PersistentVolumeClaims("shop").Get(ctx, "data", metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		return claim.Status.Phase == corev1.ClaimBound && claim.Spec.VolumeName != "", fmt.Sprintf("%s, volume %q", claim.Status.Phase, claim.Spec.VolumeName)
	})
	h, err := hostClient.CoreV1().PersistentVolumeClaims(e.ns).Get(ctx, "data-x-shop-x-"+e.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if claim.Spec.VolumeName != h.Spec.VolumeName {
		t.Errorf("the virtual claim is bound to %q, the host's to %q", claim.Spec.VolumeName, h.Spec.VolumeName)
	}
	pv, err := e.v.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("kubectl get pv in the virtual cluster: %v", err)
	}
	if pv.Status.Phase != corev1.VolumeBound || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != claim.UID || !pv.Spec.Capacity.Storage().Equal(*h.Status.Capacity.Storage()) {
		t.Errorf("virtual volume %s: %s, claim %+v, capacity %v; want Bound to shop/data with the host's %v", pv.Name, pv.Status.Phase, pv.Spec.ClaimRef, pv.Spec.Capacity.Storage(), h.Status.Capacity.Storage())
	}
	if out := e.kubectl(t, "", "-n", "shop", "get", "pvc", "data", "--no-headers"); !strings.Contains(out, pv.Name) {
		t.Errorf("kubectl get pvc shows no volume: %s", out)
	}
	if class := claim.Spec.StorageClassName; class == nil || *class != host.StorageClass {
		t.Errorf("the claim's class is %v, want the host's default %q, filled in by the virtual apiserver", class, host.StorageClass)
	}
	return pv
}

// testStorageClasses: the host's StorageClasses are the virtual cluster's,
// its default included, and follow the host's; one made in the virtual
// cluster stays.
func (e *virtualEnv) testStorageClasses(t *testing.T) {
	ctx := context.Background()
	if out := e.kubectl(t, "", "get", "storageclass", "--no-headers"); !strings.Contains(out, host.StorageClass+" (default)") {
		t.Errorf("kubectl get storageclass: %s; want the host's default class", out)
	}
	e.kubectl(t, "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: mine}\nprovisioner: example.com/none\n", "apply", "-f", "-")
	extra := "extra-" + e.name
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: extra, Labels: map[string]string{"tier": "1"}}, Provisioner: "example.com/extra"}
	if _, err := hostClient.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hostClient.StorageV1().StorageClasses().Delete(context.Background(), extra, metav1.DeleteOptions{})
	})
	mirrored := func(what, tier string) {
		t.Helper()
		eventually(t, 30*time.Second, what, func(ctx context.Context) (bool, string) {
			v, err := e.v.StorageV1().StorageClasses().Get(ctx, extra, metav1.GetOptions{})
			if tier == "" {
				return apierrors.IsNotFound(err), fmt.Sprint(err)
			}
			if err != nil {
				return false, err.Error()
			}
			return v.Provisioner == "example.com/extra" && v.Labels["tier"] == tier, fmt.Sprintf("%s %v", v.Provisioner, v.Labels)
		})
	}
	mirrored("the host's new class in the virtual cluster", "1")
	class, err := hostClient.StorageV1().StorageClasses().Get(ctx, extra, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	class.Labels["tier"] = "2"
	if _, err := hostClient.StorageV1().StorageClasses().Update(ctx, class, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	mirrored("the host class's new label in the virtual cluster", "2")
	if err := hostClient.StorageV1().StorageClasses().Delete(ctx, extra, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	mirrored("the host's deleted class gone from the virtual cluster", "")
	if _, err := e.v.StorageV1().StorageClasses().Get(ctx, "mine", metav1.GetOptions{}); err != nil {
		t.Errorf("the class made in the virtual cluster: %v", err)
	}
}

func (e *virtualEnv) volumeGone(t *testing.T, name string) {
	t.Helper()
	eventually(t, 60*time.Second, "the virtual volume gone with its claim", func(ctx context.Context) (bool, string) {
		_, err := e.v.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

const virtualOnly = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: shop}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get]}
`

func (e *virtualEnv) testStaysVirtual(t *testing.T) {
	e.kubectl(t, virtualOnly, "apply", "-f", "-")
	e.kubectl(t, "", "wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")
	eventually(t, 30*time.Second, "the custom resource", func(ctx context.Context) (bool, string) {
		out, err := kubectlErr(e.vc.KubeconfigPath(), "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: shop}\nsize: 3\n", "apply", "-f", "-")
		return err == nil, out
	})
	hk := testHost.KubeconfigPath()
	if out, err := kubectlErr(hk, "", "get", "crd", "widgets.example.com"); err == nil {
		t.Errorf("CRD on the host:\n%s", out)
	}
	for _, kind := range []string{"roles", "deployments", "replicasets", "jobs"} {
		if out := kubectl(t, hk, "", "-n", e.ns, "get", kind, "-o", "name"); strings.TrimSpace(out) != "" {
			t.Errorf("host namespace holds %s:\n%s", kind, out)
		}
	}
	// Nothing on the host copies the Widget or the Role.
	names, err := hostObjectsOf(context.Background(), e.ns, syncer.LabelManagedBy+"="+e.name)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if name := strings.SplitN(n, "/", 2)[1]; strings.HasPrefix(name, "w-x-shop-x-") || n == "configmaps/reader-x-shop-x-"+e.name {
			t.Errorf("unexpected host object %s", n)
		}
	}
}

func (e *virtualEnv) testPolicy(t *testing.T) {
	e.kubectl(t, `apiVersion: v1
kind: Pod
metadata: {name: root, namespace: shop}
spec:
  containers:
  - name: c
    image: busybox
    securityContext: {privileged: true}
`, "apply", "-f", "-")
	eventually(t, 30*time.Second, "a Warning event on the privileged pod", func(ctx context.Context) (bool, string) {
		evs, err := e.v.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=root,type=Warning"})
		if err != nil {
			return false, err.Error()
		}
		for _, ev := range evs.Items {
			if ev.Reason == "SyncRefused" && strings.Contains(ev.Message, "privileged") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d warnings", len(evs.Items))
	})
	if _, err := hostClient.CoreV1().Pods(e.ns).Get(context.Background(), "root-x-shop-x-"+e.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the privileged pod reached the host: %v", err)
	}
	e.kubectl(t, "", "-n", "shop", "delete", "pod", "root", "--wait=true", "--timeout=30s")
}

func (e *virtualEnv) testNameClash(t *testing.T) {
	ctx := context.Background()
	name := "clash-x-shop-x-" + e.name
	foreign, err := hostClient.CoreV1().ConfigMaps(e.ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"owner": "someone-else"}},
		Data:       map[string]string{"mine": "yes"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer hostClient.CoreV1().ConfigMaps(e.ns).Delete(ctx, name, metav1.DeleteOptions{})
	e.kubectl(t, `apiVersion: v1
kind: ConfigMap
metadata: {name: clash, namespace: shop}
data: {mine: "no"}
---
apiVersion: v1
kind: Pod
metadata: {name: clasher, namespace: shop}
spec:
  containers:
  - name: c
    image: busybox
    envFrom: [{configMapRef: {name: clash}}]
`, "apply", "-f", "-")
	eventually(t, 30*time.Second, "a Warning event about the clash", func(ctx context.Context) (bool, string) {
		evs, err := e.v.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "type=Warning,reason=SyncNameClash"})
		if err != nil {
			return false, err.Error()
		}
		return len(evs.Items) > 0, "no event"
	})
	now, err := hostClient.CoreV1().ConfigMaps(e.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if now.ResourceVersion != foreign.ResourceVersion || now.Data["mine"] != "yes" {
		t.Errorf("the foreign ConfigMap was changed: %+v", now)
	}
	e.kubectl(t, "", "-n", "shop", "delete", "pod", "clasher", "--wait=true", "--timeout=30s")
	if err := hostClient.CoreV1().ConfigMaps(e.ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Error(err)
	}
}

func (e *virtualEnv) testTeardown(t *testing.T) {
	ctx := context.Background()
	before, err := hostObjectsOf(ctx, e.ns, syncer.LabelManagedBy+"="+e.name)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 {
		t.Fatal("no host objects before the teardown: nothing to check")
	}
	if err := e.vc.Delete(); err != nil {
		t.Fatal(err)
	}
	after, err := hostObjectsOf(ctx, e.ns, "")
	if err != nil {
		t.Fatal(err)
	}
	// The host's own root CA ConfigMap goes with the namespace, which the
	// host finalizes after Stop returns.
	after = slices.DeleteFunc(after, func(o string) bool { return o == "configmaps/kube-root-ca.crt" })
	if len(after) > 0 {
		t.Errorf("left on the host: %v", after)
	}
	// The namespace is deleted, not waited for: the host finalizes it.
	if ns, err := hostClient.CoreV1().Namespaces().Get(ctx, e.ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) && (err != nil || ns.DeletionTimestamp == nil) {
		t.Errorf("host namespace %s not deleted: %v", e.ns, err)
	}
	t.Logf("%d host objects removed, namespace %s deleted", len(before), e.ns)
}

func tokenReview(token string) *authenticationv1.TokenReview {
	return &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}
}
