package k8s

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

var dockerInstructions = []string{"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "USER", "EXPOSE",
	"ENTRYPOINT", "CMD", "WORKDIR", "LABEL", "HEALTHCHECK", "SHELL", "STOPSIGNAL", "VOLUME", "ONBUILD"}

func parseDockerfile(text string) ([]instruction, error) {
	var out []instruction
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		start := i + 1
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				continue
			}
			l = strings.TrimSuffix(l, "\\") + " " + next
		}
		cmd, args, _ := strings.Cut(l, " ")
		cmd = strings.ToUpper(cmd)
		if !slices.Contains(dockerInstructions, cmd) {
			return nil, fmt.Errorf("line %d: unknown instruction %q", start, cmd)
		}
		out = append(out, instruction{start, cmd, strings.TrimSpace(args)})
	}
	return out, nil
}

// stage is one FROM ... block.
type stage struct {
	name, image string
	ins         []instruction
}

func stages(ins []instruction) []stage {
	var st []stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			s := stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			st = append(st, s)
			continue
		}
		if len(st) > 0 {
			st[len(st)-1].ins = append(st[len(st)-1].ins, in)
		}
	}
	return st
}

func find(ins []instruction, cmd string) []string {
	var v []string
	for _, in := range ins {
		if in.cmd == cmd {
			v = append(v, in.args)
		}
	}
	return v
}

func goModVersion(t *testing.T) []int {
	t.Helper()
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+(?:\.\d+)*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no go directive in go.mod")
	}
	return versionParts(string(m[1]))
}

func versionParts(v string) []int {
	var p []int
	for _, s := range strings.Split(v, ".") {
		n, _ := strconv.Atoi(s)
		p = append(p, n)
	}
	for len(p) < 3 {
		p = append(p, 0)
	}
	return p
}

// TestDockerfiles checks the Dockerfiles against each other, go.mod and
// the Deployment: what the image runs and as whom must be what the
// manifests expect. Docker itself is not needed.
func TestDockerfiles(t *testing.T) {
	var d appsv1.Deployment
	b, err := os.ReadFile("base/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &d); err != nil {
		t.Fatal(err)
	}
	psc := d.Spec.Template.Spec.SecurityContext
	wantUser := fmt.Sprintf("%d:%d", *psc.RunAsUser, *psc.RunAsGroup)
	goMod := goModVersion(t)

	for _, tc := range []struct {
		file, finalImage, cgo string
		tags                  bool
		// backend is the image's SECMAIL_KEY_BACKEND and its build tag.
		backend string
	}{
		{"Dockerfile", "gcr.io/distroless/static-", "0", false, ""},
		// libcrypto at run time needs glibc and libssl: distroless/base.
		{"Dockerfile.openssl", "gcr.io/distroless/base-", "1", true, "openssl"},
		// dlopen of the HSM vendor's module needs glibc: distroless/base.
		{"Dockerfile.pkcs11", "gcr.io/distroless/base-", "1", true, "pkcs11"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("../..", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), "# syntax=docker/dockerfile:1") {
				t.Error("first line must select the BuildKit Dockerfile frontend (RUN --mount needs it)")
			}
			ins, err := parseDockerfile(string(b))
			if err != nil {
				t.Fatal(err)
			}
			// ARG GO_VERSION before the first FROM, at least go.mod's version.
			var goVersion string
			for _, in := range ins {
				if in.cmd == "FROM" {
					break
				}
				if v, ok := strings.CutPrefix(in.args, "GO_VERSION="); in.cmd == "ARG" && ok {
					goVersion = v
				}
			}
			if goVersion == "" || slices.Compare(versionParts(goVersion), goMod) < 0 {
				t.Errorf("ARG GO_VERSION=%q is older than go.mod's go %v (GOTOOLCHAIN=local would refuse to build)", goVersion, goMod)
			}
			st := stages(ins)
			if len(st) != 2 {
				t.Fatalf("want a build and a final stage, have %d", len(st))
			}
			build, final := st[0], st[1]
			if build.name == "" || !strings.HasPrefix(build.image, "golang:${GO_VERSION}") {
				t.Errorf("build stage %q from %q, want a named stage from golang:${GO_VERSION}", build.name, build.image)
			}
			env := strings.Join(find(build.ins, "ENV"), " ")
			if !strings.Contains(" "+env+" ", " CGO_ENABLED="+tc.cgo+" ") {
				t.Errorf("build stage must set CGO_ENABLED=%s, ENV is %q", tc.cgo, env)
			}
			run := strings.Join(find(build.ins, "RUN"), "\n")
			if !regexp.MustCompile(`go build .*-o /out/worker \./cmd/worker`).MatchString(run) {
				t.Error("no `go build ... -o /out/worker ./cmd/worker`")
			}
			if !strings.Contains(run, "-X main.version=${VERSION}") || !slices.Contains(find(build.ins, "ARG"), "VERSION=dev") {
				t.Error("version not stamped with -X main.version=${VERSION}")
			}
			if got := strings.Contains(run, `-tags "${GO_TAGS}"`); got != tc.tags {
				t.Errorf("build tags used: %v, want %v", got, tc.tags)
			}
			if tc.tags {
				var tags []string
				for _, a := range find(build.ins, "ARG") {
					if v, ok := strings.CutPrefix(a, "GO_TAGS="); ok {
						tags = strings.Split(v, ",")
					}
				}
				if !slices.Contains(tags, tc.backend) {
					t.Errorf("ARG GO_TAGS default %v lacks %q: the image would not have its own backend", tags, tc.backend)
				}
			}
			var envBackend string
			for _, e := range find(final.ins, "ENV") {
				for _, kv := range strings.Fields(e) {
					if v, ok := strings.CutPrefix(kv, "SECMAIL_KEY_BACKEND="); ok {
						envBackend = v
					}
				}
			}
			if envBackend != tc.backend {
				t.Errorf("final ENV SECMAIL_KEY_BACKEND=%q, want %q", envBackend, tc.backend)
			}
			if !strings.HasPrefix(final.image, tc.finalImage) || !strings.HasSuffix(final.image, ":nonroot") {
				t.Errorf("final image %q, want %s...:nonroot", final.image, tc.finalImage)
			}
			if !slices.Contains(find(final.ins, "COPY"), "--from="+build.name+" /out/worker /worker") {
				t.Errorf("final stage must COPY --from=%s /out/worker /worker", build.name)
			}
			if u := find(final.ins, "USER"); len(u) != 1 || u[0] != wantUser {
				t.Errorf("USER %v, want %s as in the Deployment's securityContext", u, wantUser)
			}
			if e := find(final.ins, "EXPOSE"); !slices.Equal(e, []string{strconv.Itoa(metricsPort)}) {
				t.Errorf("EXPOSE %v, want %d", e, metricsPort)
			}
			exec := func(cmd string, want []string) {
				v := find(final.ins, cmd)
				var got []string
				if len(v) != 1 || json.Unmarshal([]byte(v[0]), &got) != nil || !slices.Equal(got, want) {
					t.Errorf("%s %v, want exec form %q", cmd, v, want)
				}
			}
			exec("ENTRYPOINT", []string{"/worker"})
			exec("CMD", d.Spec.Template.Spec.Containers[0].Args)
			for _, e := range find(final.ins, "ENV") {
				for _, kv := range strings.Fields(e) {
					if k, _, _ := strings.Cut(kv, "="); !isKnownEnv(t, k) {
						t.Errorf("ENV %s: unknown variable", k)
					}
				}
			}
		})
	}
	if fi, err := os.Stat("../../cmd/worker"); err != nil || !fi.IsDir() {
		t.Error("./cmd/worker, the build target, does not exist")
	}
}
