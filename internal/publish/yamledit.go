package publish

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/reports"
)

// SetModeInFile writes mode for domain into the publish: section of the
// YAML configuration at path, editing the document's nodes so that
// comments and the order of keys survive. The file is replaced atomically, keeping its permissions, and
// only when the result still loads as a configuration.
func SetModeInFile(path, domain, mode string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := SetMode(b, domain, mode)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mailsts-config-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if _, err := reports.LoadConfig(tmp.Name()); err != nil {
		return fmt.Errorf("the edited configuration does not load, %s left unchanged: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

// SetMode returns the YAML document src with the mode of domain in its
// publish: section set to mode (the key is added after domain: when
// missing).
func SetMode(src []byte, domain, mode string) ([]byte, error) {
	want, err := dnsresolve.Normalize(domain)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, fmt.Errorf("no publish: section")
	}
	pub := mapValue(doc.Content[0], "publish")
	doms := mapValue(pub, "domains")
	if doms == nil || doms.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("no publish.domains list")
	}
	for _, item := range doms.Content {
		dv := mapValue(item, "domain")
		if dv == nil {
			continue
		}
		if n, err := dnsresolve.Normalize(dv.Value); err != nil || n != want {
			continue
		}
		if mv := mapValue(item, "mode"); mv != nil {
			mv.Value, mv.Tag, mv.Style = mode, "!!str", 0
		} else {
			for i := 0; i+1 < len(item.Content); i += 2 {
				if item.Content[i].Value == "domain" {
					k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "mode"}
					v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: mode}
					item.Content = append(item.Content[:i+2], append([]*yaml.Node{k, v}, item.Content[i+2:]...)...)
					break
				}
			}
		}
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(&doc); err != nil {
			return nil, err
		}
		if err := enc.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	return nil, fmt.Errorf("%s is not in publish.domains", domain)
}

// mapValue returns the value node of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
