package host

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/vmatrix/vmatrix/syncer"
)

// mount is a folder (or, with a subPath, one file) of a container's volumes
// whose content the simulation knows: every file below it is in files.
type mount struct {
	path     string
	readOnly bool
	// scratch is the name of the pod's writable volume (emptyDir, claim)
	// mounted here, whose files the pod's containers share; subPath, the
	// part of it.
	scratch, subPath string
	// opaque: a volume whose files the simulation does not know (another
	// container writes there): what lies below cannot be read.
	opaque bool
}

// mountIn is the mount of mounts that a path lies in, the deepest; nil for
// none.
func mountIn(mounts []mount, p string) *mount {
	var found *mount
	for i, m := range mounts {
		if (p == m.path || strings.HasPrefix(p, strings.TrimSuffix(m.path, "/")+"/")) && (found == nil || len(m.path) > len(found.path)) {
			found = &mounts[i]
		}
	}
	return found
}

// scratchFiles are the files of a pod's writable volumes as its containers
// have left them: by volume name, then path in the volume.
type scratchFiles map[string]map[string]string

// containerFiles is what a container's command can read of its volumes: the
// files of its ConfigMap, Secret, downward API and projected mounts, laid
// out as a kubelet lays them out (a file per key, or per item at its path;
// a subPath mounts one of them), and the mounts below which the simulation
// knows every file (those, and emptyDir and claim mounts with what the
// pod's containers have written there, scratch, but for the volumes
// unknown; and /tmp, empty in an image, which a container starts with as it
// was made). Objects that are
// missing are left out: the pod does not start without them unless they
// are optional (volumesMissing).
func containerFiles(p *corev1.Pod, c *corev1.Container, data objectData, scratch scratchFiles, unknown map[string]bool) (map[string]string, []mount) {
	files := map[string]string{}
	var mounts []mount
	for _, vm := range c.VolumeMounts {
		i := slices.IndexFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			continue
		}
		v := &p.Spec.Volumes[i]
		content, readOnly, known := volumeFiles(p, v, data)
		if !known {
			continue
		}
		m := mount{path: path.Clean(vm.MountPath), readOnly: readOnly || vm.ReadOnly}
		if v.EmptyDir != nil || v.PersistentVolumeClaim != nil || v.Ephemeral != nil {
			if unknown[v.Name] {
				m.opaque = true
				mounts = append(mounts, m)
				continue
			}
			m.scratch, m.subPath, content = v.Name, path.Clean("/" + vm.SubPath)[1:], scratch[v.Name]
		}
		mounts = append(mounts, m)
		for name, text := range content {
			switch {
			case vm.SubPath == "":
				files[path.Join(vm.MountPath, name)] = text
			case name == vm.SubPath:
				files[path.Clean(vm.MountPath)] = text
			case strings.HasPrefix(name, vm.SubPath+"/"):
				files[path.Join(vm.MountPath, strings.TrimPrefix(name, vm.SubPath+"/"))] = text
			}
		}
	}
	if !slices.ContainsFunc(mounts, func(m mount) bool { return m.path == "/tmp" }) {
		mounts = append(mounts, mount{path: "/tmp"})
	}
	return files, mounts
}

// volumeFiles is a volume's files by their path in it, whether a kubelet
// mounts it read-only, and whether the simulation knows its content (an
// emptyDir or a claim starts empty here, then holds what the pod's
// containers write; a hostPath or an image's own folder it cannot know).
func volumeFiles(p *corev1.Pod, v *corev1.Volume, data objectData) (map[string]string, bool, bool) {
	var sources []corev1.VolumeProjection
	switch {
	case v.ConfigMap != nil:
		sources = []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: v.ConfigMap.LocalObjectReference, Items: v.ConfigMap.Items}}}
	case v.Secret != nil:
		sources = []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: v.Secret.SecretName}, Items: v.Secret.Items}}}
	case v.DownwardAPI != nil:
		sources = []corev1.VolumeProjection{{DownwardAPI: &corev1.DownwardAPIProjection{Items: v.DownwardAPI.Items}}}
	case v.Projected != nil:
		sources = v.Projected.Sources
	case v.EmptyDir != nil, v.PersistentVolumeClaim != nil, v.Ephemeral != nil:
		return map[string]string{}, false, true
	default:
		return nil, false, false
	}
	files := map[string]string{}
	for _, src := range sources {
		switch {
		case src.ConfigMap != nil:
			keyFiles(files, data, kindConfigMap, src.ConfigMap.Name, src.ConfigMap.Items)
		case src.Secret != nil:
			keyFiles(files, data, kindSecret, src.Secret.Name, src.Secret.Items)
		case src.DownwardAPI != nil:
			if !fieldFiles(files, p, src.DownwardAPI.Items) {
				return nil, false, false
			}
		default: // a token, a trust bundle, a certificate: not known here
			return nil, false, false
		}
	}
	return files, true, true
}

// keyFiles adds the keys of a ConfigMap or Secret as files: each key, or
// each item's key at the item's path.
func keyFiles(files map[string]string, data objectData, kind, name string, items []corev1.KeyToPath) {
	values, _ := data(kind, name)
	if len(items) == 0 {
		for k, v := range values {
			files[k] = v
		}
		return
	}
	for _, item := range items {
		if v, ok := values[item.Key]; ok {
			files[item.Path] = v
		}
	}
}

// fieldFiles adds the downward API's files of a pod's fields; false for a
// field it cannot know (a resource's limits or requests). A synced pod's
// labels and annotations are its user's, without those its syncer adds on
// the host.
func fieldFiles(files map[string]string, p *corev1.Pod, items []corev1.DownwardAPIVolumeFile) bool {
	users := func(m map[string]string) map[string]string {
		if _, synced := p.Annotations[syncer.AnnotationNS]; !synced {
			return m
		}
		return maps.Collect(func(yield func(string, string) bool) {
			for k, v := range m {
				syncers := strings.HasPrefix(k, syncer.Prefix) && !strings.HasPrefix(k, simulatePrefix)
				if !syncers && !yield(k, v) {
					return
				}
			}
		})
	}
	for _, item := range items {
		if item.FieldRef == nil {
			return false
		}
		switch item.FieldRef.FieldPath {
		case "metadata.labels":
			files[item.Path] = formatMap(users(p.Labels))
		case "metadata.annotations":
			files[item.Path] = formatMap(users(p.Annotations))
		default:
			v, ok := podField(p, item.FieldRef.FieldPath)
			if !ok {
				return false
			}
			files[item.Path] = v
		}
	}
	return true
}

// formatMap is the downward API's form of labels or annotations: key="value"
// lines, sorted by key.
func formatMap(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		lines = append(lines, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return strings.Join(lines, "\n")
}

// fold keeps in scratch what a run of a container with mounts wrote and
// removed in the pod's writable volumes (changes, each when it happened).
func (scratch scratchFiles) fold(mounts []mount, changes []fileChange) {
	for _, ch := range changes {
		in := mountIn(mounts, ch.path)
		if in == nil || in.scratch == "" {
			continue
		}
		rel := path.Join(in.subPath, strings.TrimPrefix(strings.TrimPrefix(ch.path, in.path), "/"))
		if scratch[in.scratch] == nil {
			scratch[in.scratch] = map[string]string{}
		}
		if ch.gone {
			for q := range scratch[in.scratch] {
				if q == rel || strings.HasPrefix(q, rel+"/") {
					delete(scratch[in.scratch], q)
				}
			}
		} else {
			scratch[in.scratch][rel] = ch.text
		}
	}
}

// opaque is the sandbox with the pod's volumes that are unknown made
// opaque: what a container beside wrote there cannot be known.
func (b sandbox) opaque(unknown map[string]bool) sandbox {
	if len(unknown) == 0 {
		return b
	}
	b.mounts = slices.Clone(b.mounts)
	for i, m := range b.mounts {
		if m.scratch != "" && unknown[m.scratch] {
			b.mounts[i].opaque = true
		}
	}
	return b
}

// unwritten is the sandbox without what a run may have written that the
// simulation does not know: the pod's writable volumes and /tmp, for a run
// whose command it could not follow.
func (b sandbox) unwritten() sandbox {
	var kept []mount
	for _, m := range b.mounts {
		if m.scratch == "" && m.path != "/tmp" {
			kept = append(kept, m)
		}
	}
	known := func(p string) bool { return mountIn(kept, p) != nil }
	b.mounts = kept
	b.files = maps.Collect(func(yield func(string, string) bool) {
		for p, text := range b.files {
			if known(p) && !yield(p, text) {
				return
			}
		}
	})
	b.gone = maps.Clone(b.gone)
	maps.DeleteFunc(b.gone, func(p string, _ bool) bool { return !known(p) })
	b.dirs = maps.Clone(b.dirs)
	maps.DeleteFunc(b.dirs, func(p string, _ bool) bool { return !known(p) })
	return b
}
