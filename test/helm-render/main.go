// helm-render: a test-only renderer for the Helm subset deploy/k8s/trellis uses (Helm itself is not installed on
// the build machines). It mirrors `helm template NAME CHART --namespace NS -f FILE... --include-crds`:
//
//   - .Values (values.yaml deep-merged with each -f file in order, maps merged, everything else replaced),
//     .Release.Name/.Namespace/.Service/.IsInstall, .Chart.Name/.Version/.AppVersion (from Chart.yaml);
//   - every templates/*.yaml and templates/_*.tpl parsed into one template set (so `define`/`include` associate);
//   - sprig's text functions (minus env/expandenv, as Helm), plus toYaml, required, include and tpl;
//   - missing keys render as "" (Helm's missingkey=zero plus its "<no value>" replacement);
//   - crds/*.yaml printed first, verbatim; then each rendered template that is not blank, `# Source:` headed.
//
// Build offline in GOPATH mode (Debian golang-go, golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v3-dev):
//   GO111MODULE=off GOPATH=/usr/share/gocode:$TMP go build -o helm-render ./test/helm-render
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func readYaml(file string) (map[string]interface{}, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if out == nil {
		out = map[string]interface{}{}
	}
	return asJSONNumbers(out).(map[string]interface{}), nil
}

// asJSONNumbers turns every integer into float64, as Helm's values are (it reads YAML through JSON): a template
// comparing a value with an int literal (`eq .port 80`) fails under Helm, and so it fails here.
func asJSONNumbers(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		for k, x := range t {
			t[k] = asJSONNumbers(x)
		}
		return t
	case []interface{}:
		for i, x := range t {
			t[i] = asJSONNumbers(x)
		}
		return t
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case uint64:
		return float64(t)
	default:
		return v
	}
}

// merge returns dst with src laid over it: maps merge key by key, any other value replaces.
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		sm, sok := v.(map[string]interface{})
		dm, dok := dst[k].(map[string]interface{})
		if sok && dok {
			dst[k] = merge(dm, sm)
		} else {
			dst[k] = v
		}
	}
	return dst
}

func toYaml(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func main() {
	var files multiFlag
	name := flag.String("name", "trellis", "release name")
	namespace := flag.String("namespace", "trellis-system", "release namespace")
	flag.Var(&files, "f", "values file (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm-render [--name N] [--namespace NS] [-f values.yaml]... CHART_DIR")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *name, *namespace, files); err != nil {
		fmt.Fprintln(os.Stderr, "helm-render:", err)
		os.Exit(1)
	}
}

func run(chart, name, namespace string, files []string) error {
	meta, err := readYaml(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYaml(filepath.Join(chart, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		over, err := readYaml(f)
		if err != nil {
			return err
		}
		values = merge(values, over)
	}
	str := func(k string) string { s, _ := meta[k].(string); return s }
	top := map[string]interface{}{
		"Values":  values,
		"Release": map[string]interface{}{"Name": name, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Chart":   map[string]interface{}{"Name": str("name"), "Version": str("version"), "AppVersion": str("appVersion")},
	}

	root := template.New("gotpl").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYaml
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["include"] = func(tname string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, tname, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	root.Funcs(funcs)

	tdir := filepath.Join(chart, "templates")
	entries, err := os.ReadDir(tdir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".tpl")) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(tdir, n))
		if err != nil {
			return err
		}
		if _, err := root.New(n).Parse(string(b)); err != nil {
			return err
		}
		if !strings.HasPrefix(n, "_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)

	var out strings.Builder
	crds, _ := filepath.Glob(filepath.Join(chart, "crds", "*.yaml"))
	sort.Strings(crds)
	for _, c := range crds {
		b, err := os.ReadFile(c)
		if err != nil {
			return err
		}
		fmt.Fprintf(&out, "---\n# Source: %s/crds/%s\n%s\n", str("name"), filepath.Base(c), strings.TrimSpace(string(b)))
	}
	for _, n := range names {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, n, top); err != nil {
			return err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s/templates/%s\n%s\n", str("name"), n, strings.TrimSpace(text))
	}
	_, err = os.Stdout.WriteString(out.String())
	return err
}
