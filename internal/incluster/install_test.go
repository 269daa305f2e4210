package incluster_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/vmatrix/vmatrix/internal/incluster"
	"github.com/vmatrix/vmatrix/syncer"
)

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
`

// TestInstall installs the chart into the embedded host with the SDK, checks
// the objects it makes and the rights of its ServiceAccount, runs the
// entrypoint as a local process with what the chart's pod would get, runs a
// Deployment in the virtual cluster, and uninstalls: nothing may be left.
func TestInstall(t *testing.T) {
	needHost(t)
	const name, ns = "it", "vmatrix-it"
	h := incluster.Host{Kubeconfig: testHost.KubeconfigPath()}
	ctx := context.Background()
	t.Cleanup(func() {
		if err := incluster.Uninstall(context.Background(), h, name, ns); err != nil {
			t.Errorf("uninstall in cleanup: %v", err)
		}
	})
	if err := incluster.Install(ctx, h, incluster.Release{Name: name, Namespace: ns}, incluster.InstallOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("Objects", func(t *testing.T) {
		sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + name}
		var got []string
		add := func(kind string) func([]string, error) {
			return func(names []string, err error) {
				if err != nil {
					t.Fatalf("listing %s: %v", kind, err)
				}
				for _, n := range names {
					got = append(got, kind+"/"+n)
				}
			}
		}
		add("ServiceAccount")(namesOf(hostClient.CoreV1().ServiceAccounts(ns).List(ctx, sel)))
		add("ConfigMap")(namesOf(hostClient.CoreV1().ConfigMaps(ns).List(ctx, sel)))
		add("Secret")(namesOf(hostClient.CoreV1().Secrets(ns).List(ctx, sel)))
		add("Service")(namesOf(hostClient.CoreV1().Services(ns).List(ctx, sel)))
		add("StatefulSet")(namesOf(hostClient.AppsV1().StatefulSets(ns).List(ctx, sel)))
		add("Role")(namesOf(hostClient.RbacV1().Roles(ns).List(ctx, sel)))
		add("RoleBinding")(namesOf(hostClient.RbacV1().RoleBindings(ns).List(ctx, sel)))
		add("ClusterRole")(namesOf(hostClient.RbacV1().ClusterRoles().List(ctx, sel)))
		add("ClusterRoleBinding")(namesOf(hostClient.RbacV1().ClusterRoleBindings().List(ctx, sel)))
		slices.Sort(got)
		want := []string{
			"ClusterRole/vmatrix-vmatrix-it-it", "ClusterRoleBinding/vmatrix-vmatrix-it-it",
			"ConfigMap/it-config", "Role/it", "RoleBinding/it", "Secret/vc-it",
			"Service/it", "ServiceAccount/it", "StatefulSet/it",
		}
		if !slices.Equal(got, want) {
			t.Errorf("objects of the release:\n got %v\nwant %v", got, want)
		}
		// KWOK runs the StatefulSet's pod on paper; its data volume is real.
		eventually(t, time.Minute, "pod it-0 Running and PVC data-it-0 Bound", func(ctx context.Context) (bool, string) {
			pod, err := hostClient.CoreV1().Pods(ns).Get(ctx, "it-0", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			pvc, err := hostClient.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-it-0", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return pod.Status.Phase == corev1.PodRunning && pvc.Status.Phase == corev1.ClaimBound,
				string(pod.Status.Phase) + ", " + string(pvc.Status.Phase)
		})
	})

	saDir := serviceAccountDir(t, ns, name)
	sa := clientFor(&rest.Config{
		Host: testHost.RESTConfig().Host, BearerTokenFile: filepath.Join(saDir, "token"),
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(saDir, "ca.crt")},
	})

	t.Run("Forbidden", func(t *testing.T) {
		other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}
		for what, err := range map[string]error{
			"list pods in default":         second(sa.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})),
			"create a ConfigMap elsewhere": second(sa.CoreV1().ConfigMaps("default").Create(ctx, other, metav1.CreateOptions{})),
			"list secrets everywhere":      second(sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})),
			"read kube-system secrets":     second(sa.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})),
			"create a namespace":           second(sa.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}, metav1.CreateOptions{})),
			"delete a node":                sa.CoreV1().Nodes().Delete(ctx, "vmatrix-node-0", metav1.DeleteOptions{}),
		} {
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s: got %v, want 403 Forbidden", what, err)
			}
		}
		for what, err := range map[string]error{
			"list pods in its namespace": second(sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})),
			"read its namespace":         second(sa.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})),
			"list nodes":                 second(sa.CoreV1().Nodes().List(ctx, metav1.ListOptions{})),
		} {
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
		}
	})

	t.Run("Entrypoint", func(t *testing.T) {
		// The syncer's rights end at its namespace; it must not even try
		// beyond them: the host refuses nothing while it works.
		forbiddenBefore := forbiddenRequests(t)
		defer func() {
			if n := forbiddenRequests(t) - forbiddenBefore; n > 0 {
				t.Errorf("the host refused %v requests while the pod's control plane ran", n)
			}
		}()
		data := runEntrypoint(t, ns, name, saDir)
		local := filepath.Join(data, "kubeconfig")
		kubectl(t, local, "", "create", "namespace", "shop")
		eventually(t, 30*time.Second, "the default ServiceAccount of shop", func(ctx context.Context) (bool, string) {
			_, err := clientFor(kubeconfigREST(t, local)).CoreV1().ServiceAccounts("shop").Get(ctx, "default", metav1.GetOptions{})
			return err == nil, errString(err)
		})
		kubectl(t, local, deployment, "apply", "-f", "-")
		kubectl(t, local, "", "-n", "shop", "wait", "--for=condition=Available", "deployment/web", "--timeout=90s")
		hpods, err := hostClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web," + syncer.LabelManagedBy + "=" + name})
		if err != nil {
			t.Fatal(err)
		}
		if len(hpods.Items) != 3 {
			t.Errorf("%d host pods of the Deployment in %s, want 3", len(hpods.Items), ns)
		}
		t.Logf("kubectl get pods -o wide:\n%s", kubectl(t, local, "", "-n", "shop", "get", "pods", "-o", "wide"))
		// Logs and exec through the pod's control plane and its syncer, with
		// the host rights the chart's Role gives.
		if logs := kubectl(t, local, "", "-n", "shop", "logs", "deploy/web"); !strings.Contains(logs, "simulated container") {
			t.Errorf("kubectl logs:\n%s", logs)
		}
		if out := kubectl(t, local, "", "-n", "shop", "exec", "deploy/web", "--", "echo", "inside"); out != "inside\n" {
			t.Errorf("kubectl exec: %q", out)
		}

		// The Secret carries the kubeconfig, pointed at the Service.
		s, err := hostClient.CoreV1().Secrets(ns).Get(ctx, incluster.KubeconfigSecret(name), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		kc, err := clientcmd.Load(s.Data["config"])
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range kc.Clusters {
			if c.Server != "https://it.vmatrix-it.svc:443" {
				t.Errorf("kubeconfig in the Secret: server %s, want the Service", c.Server)
			}
		}
	})

	t.Run("Uninstall", func(t *testing.T) { uninstall(t, h, name, ns) })
}

// uninstall uninstalls a release and checks that nothing of it is left on
// the host: its namespace, cluster-wide RBAC, synced pods and volumes.
func uninstall(t *testing.T, h incluster.Host, name, ns string) {
	ctx := context.Background()
	if err := incluster.Uninstall(ctx, h, name, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := hostClient.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s: %v, want it gone", ns, err)
	}
	rbac := "vmatrix-" + ns + "-" + name
	if _, err := hostClient.RbacV1().ClusterRoles().Get(ctx, rbac, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRole %s: %v, want it gone", rbac, err)
	}
	if _, err := hostClient.RbacV1().ClusterRoleBindings().Get(ctx, rbac, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRoleBinding %s: %v, want it gone", rbac, err)
	}
	pods, err := hostClient.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: syncer.LabelManagedBy + "=" + name})
	if err != nil || len(pods.Items) > 0 {
		t.Errorf("synced pods left on the host: %v %v", err, pods)
	}
	pvs, err := hostClient.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, pv := range pvs.Items {
		if pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Namespace == ns {
			eventually(t, 30*time.Second, "volume "+pv.Name+" reclaimed", func(ctx context.Context) (bool, string) {
				_, err := hostClient.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
				return apierrors.IsNotFound(err), errString(err)
			})
		}
	}
}

// serviceAccountDir makes what the kubelet mounts for the chart's
// ServiceAccount: a token from the TokenRequest API, the host's CA and the
// namespace.
func serviceAccountDir(t *testing.T, ns, sa string) string {
	t.Helper()
	tr, err := hostClient.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := testHost.RESTConfig().CAData
	for file, content := range map[string][]byte{"token": []byte(tr.Status.Token), "ca.crt": ca, "namespace": []byte(ns)} {
		if err := os.WriteFile(filepath.Join(dir, file), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runEntrypoint starts `vmatrix controlplane` as the chart's pod would run
// it: the container's args and environment from the installed StatefulSet,
// its config file from the installed ConfigMap, with the mount paths moved
// into a temporary folder and the apiserver's port left to the process (the
// tests of this machine share its ports). It returns the data folder once
// the kubeconfig Secret is filled; the cleanup stops the process.
func runEntrypoint(t *testing.T, ns, name, saDir string) string {
	data, _ := runContainer(t, ns, name, saDir, nil)
	return data
}

// imageRoot is an unpacked image for runContainer: its root folder and the
// config that says how a runtime starts it.
type imageRoot struct {
	dir    string
	config v1.Config
}

// runContainer is runEntrypoint, or with img the container as a runtime
// would start it from the image: the image's entrypoint and environment, the
// container's args and environment, the volumes (ConfigMap, data, /tmp, the
// ServiceAccount's files) put at their mount paths in the root folder, and
// the process chrooted there as the pod's non-root user. It shares the
// machine's network, so the apiserver's port is still the process's choice.
// stop stops the process before the cleanup would.
func runContainer(t *testing.T, ns, name, saDir string, img *imageRoot) (data string, stop func()) {
	t.Helper()
	ctx := context.Background()
	sts, err := hostClient.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := hostClient.CoreV1().ConfigMaps(ns).Get(ctx, name+"-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	pod := sts.Spec.Template.Spec
	c := pod.Containers[0]
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = filepath.Join(root, m.Name)
		if img != nil {
			mounts[m.MountPath] = filepath.Join(img.dir, m.MountPath)
		}
		if err := os.MkdirAll(mounts[m.MountPath], 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["port"] = 0
	out, _ := yaml.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(mounts["/etc/vmatrix"], "config.yaml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	hostURL := strings.TrimPrefix(testHost.RESTConfig().Host, "https://")
	hostAddr, hostPort, _ := strings.Cut(hostURL, ":")
	podEnv := []string{"KUBERNETES_SERVICE_HOST=" + hostAddr, "KUBERNETES_SERVICE_PORT=" + hostPort, "POD_IP=127.0.0.1"}
	for _, e := range c.Env {
		if e.Value != "" {
			podEnv = append(podEnv, e.Name+"="+e.Value)
		}
	}
	var cmd *exec.Cmd
	if img == nil {
		args := []string{}
		for _, a := range c.Args {
			if flag, value, ok := strings.Cut(a, "="); ok {
				for path, local := range mounts {
					if value == path || strings.HasPrefix(value, path+"/") {
						a = flag + "=" + local + strings.TrimPrefix(value, path)
						break
					}
				}
			}
			args = append(args, a)
		}
		args = append(args, "--service-account-dir="+saDir)
		cmd = exec.Command(vmatrixBin, args...)
		cmd.Env = append(os.Environ(), podEnv...)
	} else {
		cmd = containerCommand(t, img, pod, c.Args, saDir)
		cmd.Env = append(slices.Clone(img.config.Env), podEnv...)
	}
	logPath := filepath.Join(root, "controlplane.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = sync.OnceFunc(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("vmatrix controlplane did not stop on SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("vmatrix controlplane log:\n%s", b)
		}
	})
	t.Cleanup(stop)
	eventually(t, 2*time.Minute, "the kubeconfig in Secret "+incluster.KubeconfigSecret(name), func(ctx context.Context) (bool, string) {
		select {
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(logPath)
			t.Fatalf("vmatrix controlplane exited: %v\n%s", err, b)
		default:
		}
		s, err := hostClient.CoreV1().Secrets(ns).Get(ctx, incluster.KubeconfigSecret(name), metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(s.Data["config"]) > 0, "empty"
	})
	return mounts["/data"], stop
}

func kubeconfigREST(t *testing.T, path string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func second[T any](_ T, err error) error { return err }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// namesOf lists the names of the items of a typed list.
func namesOf(list runtime.Object, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, o := range items {
		m, err := meta.Accessor(o)
		if err != nil {
			return nil, err
		}
		names = append(names, m.GetName())
	}
	return names, nil
}

// forbiddenRequests is the host apiserver's count of requests it answered 403.
func forbiddenRequests(t *testing.T) float64 {
	t.Helper()
	raw, err := hostClient.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "apiserver_request_total{") && strings.Contains(line, `code="403"`) {
			if n, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
				total += n
			}
		}
	}
	return total
}
