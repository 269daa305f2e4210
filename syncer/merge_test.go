package syncer

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TestMergeMetaThreeWay: a label or annotation removed from the virtual
// object goes from the host copy too; what the host side added stays.
func TestMergeMetaThreeWay(t *testing.T) {
	first := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Labels:      map[string]string{"app": "web", "tier": "front"},
		Annotations: map[string]string{"note": "x", AnnotationName: "web"},
	}}
	recordWritten(first)
	host := first.DeepCopy()
	// The host side adds its own.
	host.Labels["host-added"] = "1"
	host.Annotations["host-note"] = "y"

	// The virtual object loses tier and note.
	next := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Labels:      map[string]string{"app": "web"},
		Annotations: map[string]string{AnnotationName: "web"},
	}}
	recordWritten(next)
	if !mergeMeta(host, next) {
		t.Fatal("mergeMeta saw no change")
	}
	if want := map[string]string{"app": "web", "host-added": "1"}; !maps.Equal(host.Labels, want) {
		t.Errorf("labels %v, want %v", host.Labels, want)
	}
	if _, ok := host.Annotations["note"]; ok {
		t.Errorf("annotation note removed on the virtual side stays on the host: %v", host.Annotations)
	}
	if host.Annotations["host-note"] != "y" || host.Annotations[AnnotationName] != "web" {
		t.Errorf("annotations %v lost what should stay", host.Annotations)
	}
	if mergeMeta(host, next) {
		t.Error("a second merge of the same wish changed something")
	}
}

// TestIsAllocated reads the host's refusal of a Service from its causes, not
// its message.
func TestIsAllocated(t *testing.T) {
	gk := schema.GroupKind{Kind: "Service"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{apierrors.NewInvalid(gk, "web", field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs"), []string{"10.96.0.10"}, "failed to allocate IP 10.96.0.10: provided IP is already allocated")}), true},
		{apierrors.NewInvalid(gk, "web", field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(0).Child("nodePort"), 30080, "provided port is already allocated")}), true},
		{apierrors.NewInvalid(gk, "web", field.ErrorList{field.Invalid(field.NewPath("spec", "selector"), "x", "already allocated")}), false},
		{apierrors.NewAlreadyExists(schema.GroupResource{Resource: "services"}, "web"), false},
		{nil, false},
	} {
		if got := isAllocated(tc.err); got != tc.want {
			t.Errorf("isAllocated(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestRefusalCoversTheBaseline: every field the baseline Pod Security
// Standard forbids keeps a pod off the host, unless AllowPrivileged.
func TestRefusalCoversTheBaseline(t *testing.T) {
	yes := true
	ctr := func(mutate func(*corev1.Container)) func(*corev1.PodSpec) {
		return func(s *corev1.PodSpec) { mutate(&s.Containers[0]) }
	}
	sc := func(mutate func(*corev1.SecurityContext)) func(*corev1.PodSpec) {
		return ctr(func(c *corev1.Container) { c.SecurityContext = &corev1.SecurityContext{}; mutate(c.SecurityContext) })
	}
	for name, mutate := range map[string]func(*corev1.PodSpec){
		"hostNetwork": func(s *corev1.PodSpec) { s.HostNetwork = true },
		"hostPID":     func(s *corev1.PodSpec) { s.HostPID = true },
		"hostIPC":     func(s *corev1.PodSpec) { s.HostIPC = true },
		"privileged":  sc(func(c *corev1.SecurityContext) { c.Privileged = &yes }),
		"capabilities": sc(func(c *corev1.SecurityContext) {
			c.Capabilities = &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}
		}),
		"hostPath": func(s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		},
		"hostPort":  ctr(func(c *corev1.Container) { c.Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 80}} }),
		"procMount": sc(func(c *corev1.SecurityContext) { m := corev1.UnmaskedProcMount; c.ProcMount = &m }),
		"seccomp": sc(func(c *corev1.SecurityContext) {
			c.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}),
		"seLinux": sc(func(c *corev1.SecurityContext) { c.SELinuxOptions = &corev1.SELinuxOptions{Type: "spc_t"} }),
		"appArmor": sc(func(c *corev1.SecurityContext) {
			c.AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}
		}),
		"sysctls": func(s *corev1.PodSpec) {
			s.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel.msgmax", Value: "1"}}}
		},
		"windowsHostProcess": sc(func(c *corev1.SecurityContext) {
			c.WindowsOptions = &corev1.WindowsSecurityContextOptions{HostProcess: &yes}
		}),
		"initContainer": func(s *corev1.PodSpec) {
			s.InitContainers = []corev1.Container{{Name: "init", Image: "x", SecurityContext: &corev1.SecurityContext{Privileged: &yes}}}
		},
	} {
		p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "x"}}}}
		mutate(&p.Spec)
		if why := (&Syncer{}).refusal(p); why == "" {
			t.Errorf("%s: the pod would run on the host", name)
		} else {
			t.Logf("%s: refused for %s", name, why)
		}
		if why := (&Syncer{opts: Options{AllowPrivileged: true}}).refusal(p); why != "" {
			t.Errorf("%s with AllowPrivileged: refused for %s", name, why)
		}
	}
	plain := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "x", Ports: []corev1.ContainerPort{{ContainerPort: 80}}}}}}
	if why := (&Syncer{}).refusal(plain); why != "" {
		t.Errorf("a plain pod is refused for %s", why)
	}
}
