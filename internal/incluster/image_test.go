package incluster_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vmatrix/vmatrix/fixtures"
	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/internal/image"
	"github.com/vmatrix/vmatrix/internal/incluster"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/syncer"
)

// TestImageRuns builds the image of the chart's default Kubernetes version
// (a static vmatrix, the cached binaries), checks its config and files,
// unpacks it, and runs it the way the chart's pod would: installed with the
// chart's defaults, its entrypoint chrooted into the unpacked image as the
// pod's non-root user, with the pod's volumes and environment. The virtual
// cluster must come up and run the Deployment scenario; afterwards no
// process of the image, no port and no host object may be left.
func TestImageRuns(t *testing.T) {
	needHost(t)
	if os.Getuid() != 0 {
		t.Skip("chroot needs root")
	}
	const name, ns = "img", "vmatrix-img"
	h := incluster.Host{Kubeconfig: testHost.KubeconfigPath()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t.Cleanup(func() { _ = incluster.Uninstall(context.Background(), h, name, ns) })
	if err := incluster.Install(ctx, h, incluster.Release{Name: name, Namespace: ns}, incluster.InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	sts, err := hostClient.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := sts.Spec.Template.Spec

	// The image the chart names by default.
	v, bins, err := image.CachedBinaries(strings.TrimPrefix(pod.Containers[0].Image, image.Repository+":"), k8sdist.DefaultCacheDir())
	if err != nil {
		t.Fatalf("the chart's image %s: %v", pod.Containers[0].Image, err)
	}
	if pod.Containers[0].Image != image.Reference(v) {
		t.Errorf("the chart's image is %s, the build's %s", pod.Containers[0].Image, image.Reference(v))
	}
	vmatrix := filepath.Join(t.TempDir(), "vmatrix")
	// Not under ctx: on a fresh machine this static build is cold, 8 min or
	// more beside the other packages' tests; go test's -timeout bounds it.
	if err := image.BuildVMatrix(t.Context(), vmatrix); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	img, err := image.Build(image.Options{Version: v, Binaries: bins, VMatrix: vmatrix})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %s", image.Reference(v), time.Since(start).Round(100*time.Millisecond))
	checkConfig(t, cfg, v, pod)

	root := &imageRoot{dir: t.TempDir(), config: cfg.Config}
	files := unpack(t, img, root.dir)
	checkFiles(t, files)

	// Set before the process starts, checked after it stopped: cleanups
	// run last registered first.
	var port int
	t.Cleanup(func() {
		if pids := processesIn(root.dir); len(pids) > 0 {
			t.Errorf("processes of the image left running: %v", pids)
		}
		if port != 0 && proc.PortOpen(port) {
			t.Errorf("the virtual apiserver's port %d still listens", port)
		}
	})
	data, stop := runContainer(t, ns, name, serviceAccountDir(t, ns, name), root)
	kubeconfig := filepath.Join(data, "kubeconfig")
	port = apiserverPort(t, kubeconfig)
	// The image's binaries run, as the pod's user.
	var exes []string
	for _, pid := range processesIn(root.dir) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		exes = append(exes, strings.TrimPrefix(exe, root.dir))
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if uid := fmt.Sprintf("\nUid:\t%d\t", *pod.SecurityContext.RunAsUser); !strings.Contains(string(status), uid) {
			t.Errorf("process %d (%s) does not run as uid %d", pid, exe, *pod.SecurityContext.RunAsUser)
		}
	}
	slices.Sort(exes)
	if want := []string{image.APIServer, image.ControllerManager, image.Entrypoint}; !slices.Equal(exes, want) {
		t.Errorf("processes in the image's root run %q, want %q", exes, want)
	}

	vc, err := framework.Connect(ctx, framework.ClusterInfo{Name: name, Version: v.String(), KubeconfigPath: kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	vns, err := vc.NewNamespace(ctx, "image")
	if err != nil {
		t.Fatal(err)
	}
	if err := fixtures.Apply(ctx, vc, vns, fixtures.DeploymentWithService); err != nil {
		t.Fatal(err)
	}
	if _, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(vns, "web"), fixtures.DeploymentAvailable()); err != nil {
		t.Fatal(err)
	}
	hpods, err := hostClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web," + syncer.LabelManagedBy + "=" + name})
	if err != nil {
		t.Fatal(err)
	}
	if len(hpods.Items) != 2 {
		t.Errorf("%d host pods of the Deployment in %s, want 2", len(hpods.Items), ns)
	}
	for _, p := range hpods.Items {
		t.Logf("host pod %s/%s: %s", p.Namespace, p.Name, p.Status.Phase)
	}

	// Stop the container, then uninstall: nothing may be left.
	t.Run("Uninstall", func(t *testing.T) {
		stop()
		uninstall(t, h, name, ns)
	})
}

// checkConfig: what a runtime reads from the image, and that the chart's pod
// agrees with it.
func checkConfig(t *testing.T, cfg *v1.ConfigFile, v k8sdist.Version, pod corev1.PodSpec) {
	t.Helper()
	c := cfg.Config
	if !slices.Equal(c.Entrypoint, []string{image.Entrypoint}) || !slices.Equal(c.Cmd, []string{"controlplane"}) {
		t.Errorf("entrypoint %q, cmd %q", c.Entrypoint, c.Cmd)
	}
	if args := pod.Containers[0].Args; len(args) == 0 || args[0] != "controlplane" {
		t.Errorf("the chart's args %q do not run controlplane", args)
	}
	sc := pod.SecurityContext
	if want := fmt.Sprintf("%d:%d", *sc.RunAsUser, *sc.RunAsGroup); c.User != want {
		t.Errorf("user %q, the chart runs as %s", c.User, want)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version": v.String(),
		image.LabelKubernetesVersion:       strings.TrimPrefix(v.String(), "v"),
		image.LabelVMatrixVersion:          "(devel)",
	} {
		if got := c.Labels[k]; got != want {
			t.Errorf("label %s=%q, want %q", k, got, want)
		}
	}
	for _, e := range []string{"VMATRIX_KUBE_APISERVER=" + image.APIServer, "VMATRIX_KUBE_CONTROLLER_MANAGER=" + image.ControllerManager} {
		if !slices.Contains(c.Env, e) {
			t.Errorf("env %q lacks %s", c.Env, e)
		}
	}
	if cfg.OS != "linux" || cfg.Architecture == "" || !cfg.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("os %s, architecture %s, created %s", cfg.OS, cfg.Architecture, cfg.Created)
	}
}

// checkFiles: the image holds these and nothing else but the shared
// libraries that dynamically linked Kubernetes binaries need.
func checkFiles(t *testing.T, files []string) {
	t.Helper()
	want := []string{
		"data", "etc", "etc/group", "etc/passwd", "etc/ssl", "etc/ssl/certs", "etc/ssl/certs/ca-certificates.crt",
		"etc/vmatrix", "home", "home/nonroot", "tmp", "usr", "usr/local", "usr/local/bin",
		"usr/local/bin/kube-apiserver", "usr/local/bin/kube-controller-manager", "usr/local/bin/vmatrix",
	}
	var got, libs []string
	for _, f := range files {
		if strings.HasPrefix(f, "lib") || strings.HasPrefix(f, "usr/lib") {
			libs = append(libs, f)
			continue
		}
		got = append(got, f)
	}
	t.Logf("shared libraries: %v", libs)
	if !slices.Equal(got, want) {
		t.Errorf("files of the image:\n got %q\nwant %q", got, want)
	}
}

// unpack writes the image's file system into dir with the owners and modes
// of its layers, and returns its entries.
func unpack(t *testing.T, img v1.Image, dir string) []string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600); err == nil {
				_, err = io.Copy(f, tr)
				f.Close()
			}
		default:
			t.Fatalf("%s: unexpected tar entry type %c", h.Name, h.Typeflag)
		}
		if err == nil {
			err = os.Lchown(p, h.Uid, h.Gid)
		}
		if err == nil {
			err = os.Chmod(p, h.FileInfo().Mode())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(names)
	return names
}

// containerCommand prepares what the runtime adds to an unpacked image
// (device nodes, the ServiceAccount's projected files, the volumes'
// owners as fsGroup makes them) and returns the chrooted entrypoint.
func containerCommand(t *testing.T, img *imageRoot, pod corev1.PodSpec, args []string, saDir string) *exec.Cmd {
	t.Helper()
	sc := pod.SecurityContext
	fsGroup := int(*sc.FSGroup)
	dev := filepath.Join(img.dir, "dev")
	must(t, os.MkdirAll(dev, 0o755))
	for n, minor := range map[string]int{"null": 3, "zero": 5, "random": 8, "urandom": 9} {
		p := filepath.Join(dev, n)
		must(t, syscall.Mknod(p, syscall.S_IFCHR|0o666, 1<<8|minor))
		must(t, os.Chmod(p, 0o666))
	}
	sa := filepath.Join(img.dir, incluster.DefaultServiceAccountDir)
	must(t, os.MkdirAll(sa, 0o755))
	for _, f := range []string{"token", "ca.crt", "namespace"} {
		b, err := os.ReadFile(filepath.Join(saDir, f))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(sa, f), b, 0o640))
		must(t, os.Chown(filepath.Join(sa, f), 0, fsGroup))
	}
	must(t, os.Chown(filepath.Join(img.dir, "data"), 0, fsGroup))
	must(t, os.Chmod(filepath.Join(img.dir, "data"), 0o775|os.ModeSetgid))
	must(t, os.Chmod(filepath.Join(img.dir, "tmp"), 0o777))

	ep := img.config.Entrypoint
	cmd := &exec.Cmd{Path: ep[0], Args: append(slices.Clone(ep), args...), Dir: "/"}
	if img.config.WorkingDir != "" {
		cmd.Dir = img.config.WorkingDir
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     img.dir,
		Credential: &syscall.Credential{Uid: uint32(*sc.RunAsUser), Gid: uint32(*sc.RunAsGroup), Groups: []uint32{uint32(fsGroup)}},
		Pdeathsig:  syscall.SIGKILL,
	}
	return cmd
}

// processesIn lists the processes whose root is dir: those of the image.
func processesIn(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if r, err := os.Readlink("/proc/" + e.Name() + "/root"); err == nil && r == dir && proc.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func apiserverPort(t *testing.T, kubeconfig string) int {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(kubeconfig)
	must(t, err)
	for _, c := range kc.Clusters {
		var port int
		if i := strings.LastIndexByte(c.Server, ':'); i >= 0 {
			fmt.Sscan(c.Server[i+1:], &port)
		}
		return port
	}
	t.Fatal("no cluster in " + kubeconfig)
	return 0
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
