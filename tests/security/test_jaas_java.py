"""The JAAS parser agrees with the JVM's: the same files accepted, the same options read.

A small Java program (compiled here with javac) loads each file through
``javax.security.auth.login.Configuration`` and prints the Server section; zabby's parser
must accept exactly the files Java accepts and read the same modules, flags and options.
Files with ``${...}`` (which Java expands and zabby refuses) are left out.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from zabby.server.jaas import JaasError, parse_jaas
from zabby.testing.pytest_plugin import in_ci

pytestmark = pytest.mark.timeout(120)

PROBE = r"""
import javax.security.auth.login.*;
import java.util.*;
public class JaasProbe {
  static String q(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') b.append('\\').append(c);
      else if (c < 0x20 || c > 0x7e) b.append(String.format("\\u%04x", (int) c));
      else b.append(c);
    }
    return b.append('"').toString();
  }
  public static void main(String[] a) throws Exception {
    for (String f : a) {
      System.setProperty("java.security.auth.login.config", f);
      try {
        Configuration.setConfiguration(null);
        AppConfigurationEntry[] e = Configuration.getConfiguration().getAppConfigurationEntry("Server");
        if (e == null) { System.out.println("null"); continue; }
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < e.length; i++) {
          if (i > 0) sb.append(",");
          String flag = e[i].getControlFlag().toString().replace("LoginModuleControlFlag: ", "");
          sb.append("[").append(q(e[i].getLoginModuleName())).append(",").append(q(flag)).append(",{");
          int k = 0;
          for (Map.Entry<String, ?> o : new TreeMap<String, Object>(e[i].getOptions()).entrySet()) {
            if (k++ > 0) sb.append(",");
            sb.append(q(o.getKey())).append(":").append(q(String.valueOf(o.getValue())));
          }
          sb.append("}]");
        }
        System.out.println(sb.append("]"));
      } catch (Exception ex) { System.out.println("\"error\""); }
    }
  }
}
"""

CASES = [
    'Server { m required a=v; };',
    'Server { m REQUIRED a=v; };',
    'Server { m Optional a="x"; };',
    'Server { m required a=v a=w; };',
    '# c\nServer { m required a=v; };',
    'Server { m required a=v; }',
    'server { m required a=v; };',
    'Server { m required a-b=v a$=w a*c=x a.b=y a_9=z; };',
    'Server { m required a="x" "y"; };',
    'Server { m required a=; };',
    'Server { m required a=v;; };',
    'Server { m required a=v; };;',
    'Server { m required a=v; }; // x\n/* y */ Other { n optional; };',
    'Server { m required a=v;\n n sufficient b="w"; };',
    'Server { m required a=v b; };',
    'Server{m required a=v;};',
    'Server { m required a="unterminated; };',
    'Server { m required a="x\ny"; };',
    'Server { m required a="\\101\\x41\\u0041\\n\\t\\"\\\\"; };',
    "Server { m required a='single' b='it\"s'; };",
    'Server { m required _a=v $b=w; };',
    'Server { m required a=v#c; };',
    'Server { m required a=v\n// comment line\n; };',
    'Server { m required a=v / lone slash comment\n; };',
    'Server { m required "a b"="c d"; };',
    '"Server" { "m" "required" a=v; };',
    'Server { m required a=-v; };',
    'Server { m required a=1; };',
    'Server { m required a=v1.2-3; };',
    'Server { m required a=v!; };',
    'Server { m required user_a@b="x"; };',
    'Server { m required user_zoë="pässwörd"; };',
    'Server { m required a=/p/q; };',
    'Server { };',
    'Server { m required; }; Server { m required; };',
    'Server,Other { m required a=v; };',
    'Server { m required a:v; };',
    'Server { org.apache.Zk$Inner required a="1"; };',
    'Server { 9m required a=v; };',
    'Server { m bogus a=v; };',
    '/* unterminated',
    '',
    'Other { m required a=v; };',
    'Server { m required user_bob="bob-pw"\n  user_super="s3cret";\n};\n'
    'QuorumServer { org.apache.zookeeper.server.auth.DigestLoginModule required '
    'user_q="1"; };',
]


def _zabby(text: str):
    try:
        cfg = parse_jaas(text, "t.conf")
    except JaasError:
        return "error"
    s = cfg.section("Server")
    if s is None or not s.modules:
        return None
    return [[m.class_name, m.flag, dict(sorted(m.options.items()))] for m in s.modules]


def test_parser_agrees_with_java(tmp_path):
    javac, java = shutil.which("javac"), shutil.which("java")
    if not javac or not java:
        msg = "needs javac and java (apt-get install openjdk-17-jdk-headless)"
        if in_ci():
            pytest.fail(msg + " (CI=true: missing tools are an error)")
        pytest.skip(msg)
    (tmp_path / "JaasProbe.java").write_text(PROBE)
    subprocess.run([javac, "JaasProbe.java"], cwd=tmp_path, check=True, timeout=90,
                   capture_output=True)
    files = []
    for i, text in enumerate(CASES):
        f = tmp_path / f"case{i}.conf"
        f.write_bytes(text.encode("utf-8"))
        files.append(str(f))
    p = subprocess.run([java, "-Dfile.encoding=UTF-8", "-cp", str(tmp_path), "JaasProbe",
                        *files], capture_output=True, timeout=90, check=True,
                       encoding="utf-8")
    answers = p.stdout.splitlines()
    assert len(answers) == len(CASES), p.stdout + p.stderr
    differ = []
    for text, line in zip(CASES, answers, strict=True):
        ref = json.loads(line)
        if ref not in ("error", None):
            ref = [[c, f.lower(), o] for c, f, o in ref]
        got = _zabby(text)
        if got != ref:
            differ.append(f"{text!r}: java {ref!r}, zabby {got!r}")
    assert not differ, "\n".join(differ)
