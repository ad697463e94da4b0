package harness

import (
	"fmt"
	"strings"
)

// OneHub is the config most tests need: on the WebSocket site a json
// push_hub at /ws on hub {$HUB} with auth first_message and then the
// directives given, one a line; on the API site, push_api for {$HUB}.
func OneHub(directives ...string) string {
	return "{$WS_SITE} {\n" + endpoint("/ws", "", directives) + "}\n\n" + APISite("HUB")
}

// BothProtocols is OneHub with a second endpoint on {$HUB}, at /text, that
// speaks the text protocol; both take the directives given.
func BothProtocols(directives ...string) string {
	return "{$WS_SITE} {\n" + endpoint("/ws", "", directives) + endpoint("/text", "text", directives) + "}\n\n" + APISite("HUB")
}

func endpoint(path, protocol string, directives []string) string {
	if protocol != "" {
		directives = append([]string{"protocol " + protocol}, directives...)
	}
	var b strings.Builder
	b.WriteString("\tpush_hub " + path + " {\n\t\thub {$HUB}\n\t\tauth first_message\n")
	for _, d := range directives {
		b.WriteString("\t\t" + d + "\n")
	}
	b.WriteString("\t}\n")
	return b.String()
}

// APISite is the API site of a config: push_api for each hub word (HUB,
// HUB2 ...) under /<word>/, such as /HUB2/send, which
// Sites.API().Under("/HUB2") calls, and for the first one at the root too.
func APISite(hubs ...string) string {
	var b strings.Builder
	b.WriteString("{$API_SITE} {\n")
	for _, hub := range hubs {
		fmt.Fprintf(&b, "\thandle_path /%s/* {\n\t\tpush_api {\n\t\t\thub {$%s}\n\t\t}\n\t}\n", hub, hub)
	}
	fmt.Fprintf(&b, "\thandle {\n\t\tpush_api {\n\t\t\thub {$%s}\n\t\t}\n\t}\n}\n", hubs[0])
	return b.String()
}
