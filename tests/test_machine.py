from papertag.machine import cpu_name, server_host


def test_a_server_is_named_by_host_and_port_never_by_its_credentials():
    assert server_host("https://api.openai.com/v1") == "api.openai.com"
    assert server_host("http://user:s3cret@10.0.0.5:8000/v1") == "10.0.0.5:8000"
    assert server_host("http://[::1]:8080/v1") == "::1:8080"
    assert server_host("http://host:notaport/v1") == "host"


def test_this_cpu_has_a_name():
    assert cpu_name().strip() and "\n" not in cpu_name()
