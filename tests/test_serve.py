"""The voice-chat server (issue 11), started for real on a free localhost port and talked to over
its websocket and HTTP: streamed turns in order, ASR/TTS/chat, interrupt, queueing without
cross-talk of histories, bad input answered with JSON errors while the server keeps serving."""

import io
import json
import subprocess
import sys
import threading
import urllib.parse

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # the module's server compiles its programs first (~100 s on 2 loaded cores)

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e .[serve])")

from tests.helpers.serve import (MAX_AUDIO_S, Client, by_type, make_service, pcm16_bytes, speech,  # noqa: E402
                           wav_file_bytes, webm_opus_bytes)

from vita_jax.serve.app import create_app  # noqa: E402
from vita_jax.serve.background import serving  # noqa: E402


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return make_service(str(tmp_path_factory.mktemp("serve-parts")))


@pytest.fixture(scope="module")
def server(service):
    with serving(create_app(service)) as base_url:
        yield base_url


def check_stream(messages, rate=22050):
    """start, then text / audio (indexes 0, 1, ... each with its samples), then one end, last."""
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("end") == 1, kinds
    assert set(kinds[1:-1]) <= {"text", "audio", "note", "user_text"}, kinds
    audio, end = by_type(messages, "audio"), messages[-1]
    assert [m["index"] for m in audio] == list(range(len(audio)))
    for m in audio:
        assert m["sample_rate"] == rate and len(m["wav"]) == m["samples"] > 0 and np.isfinite(m["wav"]).all()
    assert end["audio_chunks"] == len(audio) and end["text_deltas"] == len(by_type(messages, "text"))
    assert sum(m["samples"] for m in audio) == round(end["audio_s"] * rate)
    return audio, end


def test_page_health_and_info(server, service):
    import httpx

    assert httpx.get(server + "/health").json()["status"] == "ok"
    info = httpx.get(server + "/info").json()
    assert info["modes"] == ["fast", "slow"] and info["default_mode"] == "fast" and info["demo"]
    assert info["compiled_modes"] == ["fast"] and info["compiled_programs"], info
    assert info["output_sample_rate"] == 22050 and info["max_audio_s"] == MAX_AUDIO_S
    page = httpx.get(server + "/")
    assert page.status_code == 200 and 'id="talk"' in page.text and "http" not in page.text.split("<body>")[1]
    for name in ("app.js", "style.css", "recorder-worklet.js"):
        assert httpx.get(f"{server}/static/{name}").status_code == 200


def test_spoken_question_streams_text_and_audio_in_order(server):
    client = Client(server)
    client.send_audio(pcm16_bytes(speech(1.5)))
    messages = client.turn(transcribe=True)
    audio, end = check_stream(messages)
    texts = by_type(messages, "text")
    assert texts and audio, [m["type"] for m in messages]
    assert end["text"] == "".join(m["text"] for m in texts) and not end["interrupted"]
    assert by_type(messages, "user_text"), "a spoken turn with transcribe gets the question's transcript"
    timings = end["timings"]
    assert timings["tokenize_s"] > 0 and 0 < timings["first_audio_s"] <= timings["server_first_audio_s"]
    assert end["history_turns"] == 1 and end["mode"] == "fast"
    # MediaRecorder's webm/opus is decoded too (PyAV) and the history grows
    client.send_audio(webm_opus_bytes(speech(1.0, seed=1)), fmt="webm")
    audio, end = check_stream(client.turn(mode="slow"))
    assert end["history_turns"] == 2 and end["mode"] == "slow" and end["timings"]["decode_input_s"] > 0
    client.close()


def test_http_asr_tts_chat(server):
    import httpx
    import soundfile

    question = wav_file_bytes(speech(1.5))
    asr = httpx.post(server + "/asr", files={"audio": ("q.wav", question, "audio/wav")}, timeout=120)
    assert asr.status_code == 200 and isinstance(asr.json()["text"], str), asr.text
    tts = httpx.post(server + "/tts", data={"text": "Good morning."}, timeout=120)
    assert tts.status_code == 200 and tts.headers["content-type"] == "audio/wav", tts.text
    wav, rate = soundfile.read(io.BytesIO(tts.content))
    assert rate == 22050 and len(wav) > 0
    voiced = httpx.post(server + "/tts", data={"text": "Good morning."}, timeout=120,
                        files={"voice": ("me.wav", wav_file_bytes(speech(1.0, seed=2)), "audio/wav")})
    assert voiced.status_code == 200, voiced.text
    assert json.loads(voiced.headers["x-timings"])["tokenize_s"] > 0, "the voice prompt was tokenized"
    chat = httpx.post(server + "/chat", files={"audio": ("q.webm", webm_opus_bytes(speech(1.0)), "audio/webm")},
                      data={"mode": "fast"}, timeout=120)
    assert chat.status_code == 200, chat.text
    wav, rate = soundfile.read(io.BytesIO(chat.content))
    timings = json.loads(chat.headers["x-timings"])
    assert len(wav) > 0 and timings["first_audio_s"] > 0 and isinstance(urllib.parse.unquote(chat.headers["x-text"]),
                                                                        str)
    for path, kwargs, expected in (
            ("/asr", {}, "asr needs a recording"),
            ("/asr", {"files": {"audio": ("q.webm", b"not audio at all" * 50, "audio/webm")}}, "could not decode"),
            ("/tts", {"data": {"text": "  "}}, "tts needs text"),
            ("/chat", {"data": {"text": "hi", "mode": "warp"}}, "unknown mode 'warp'"),
            ("/chat", {"files": {"audio": ("long.wav", wav_file_bytes(speech(MAX_AUDIO_S + 1)), "audio/wav")}},
             "at most 4 s")):
        response = httpx.post(server + path, timeout=60, **kwargs)
        assert response.status_code == 400 and expected in response.json()["error"], (path, response.text)


def test_interrupt_stops_generation(server):
    client = Client(server)
    full = client.turn(text="Tell me a long story.")
    _, full_end = check_stream(full)
    assert full_end["stop_reason"] == "max_new_tokens" and full_end["audio_chunks"] >= 3, full_end
    client.send({"type": "reset"})
    assert client.collect(until=("reset",))[-1]["history_turns"] == 0

    def stop_at_first_audio(message):
        if message["type"] == "audio" and message["index"] == 0:
            client.send({"type": "interrupt"})

    client.send({"type": "turn", "text": "Tell me a long story."})
    messages = client.collect(on_message=stop_at_first_audio)
    end = messages[-1]
    assert end["type"] == "end" and end["interrupted"] and end["stop_reason"] == "interrupted", end
    assert end["audio_chunks"] < full_end["audio_chunks"] and end["text_deltas"] < full_end["text_deltas"]
    assert end["history_turns"] == 0, "an interrupted turn does not join the history"
    assert client.turn(text="Still there?")[-1]["type"] == "end"  # the connection goes on
    client.close()


def test_two_clients_are_queued_without_cross_talk(server):
    # references, one connection at a time
    alone_a = Client(server)
    reference_a = [alone_a.turn(text="alpha one")[-1], alone_a.turn(text="alpha two")[-1]]
    alone_a.close()
    alone_b = Client(server)
    reference_b = alone_b.turn(text="bravo")[-1]
    alone_b.close()
    # at the same time: a sends two turns, b one; all wait for the one accelerator
    a, b = Client(server), Client(server)
    results = {}

    def run(name, client, texts):
        for text in texts:
            client.send({"type": "turn", "text": text})
        results[name] = [client.collect() for _ in texts]

    threads = [threading.Thread(target=run, args=("a", a, ["alpha one", "alpha two"])),
               threading.Thread(target=run, args=("b", b, ["bravo"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    ends_a = [messages[-1] for messages in results["a"]]
    end_b = results["b"][0][-1]
    for got, want in zip([*ends_a, end_b], [*reference_a, reference_b]):
        assert got["type"] == "end" and got["text"] == want["text"] and got["prompt_tokens"] == want["prompt_tokens"]
    assert [e["history_turns"] for e in ends_a] == [1, 2] and end_b["history_turns"] == 1
    queued = [m for turn in [*results["a"], *results["b"]] for m in turn if m["type"] == "queued"]
    assert queued and all(m["position"] >= 1 for m in queued), "one of them waited with its position reported"
    # reset forgets a's history: its first turn again gives the reference answer
    a.send({"type": "reset"})
    assert a.collect(until=("reset",))[-1]["history_turns"] == 0
    again = a.turn(text="alpha one")[-1]
    assert again["text"] == reference_a[0]["text"] and again["prompt_tokens"] == reference_a[0]["prompt_tokens"]
    a.close()
    b.close()


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def bad_round(client):
    """Every kind of bad input once; each gets a JSON error naming the problem."""
    errors = []

    def expect_error(fragment):
        message = client.receive()
        assert message["type"] == "error" and fragment in message["message"], (fragment, message)
        errors.append(message)

    client.send("{not json")
    expect_error("malformed message (not JSON)")
    client.send("[1, 2]")
    expect_error("malformed message")
    client.send({"type": "launch"})
    expect_error("malformed message")
    client.send(b"\x00\x01")
    expect_error("binary audio arrived before")
    client.send({"type": "audio", "format": "aiff-ish"})
    expect_error("unknown audio format")
    client.send({"type": "audio", "format": "pcm16", "sample_rate": "fast"})
    expect_error("sample_rate")
    client.send({"type": "turn", "text": "hi", "mode": "warp"})
    expect_error("unknown mode 'warp'")
    client.send({"type": "turn", "task": "sing", "text": "hi"})
    expect_error("unknown task")
    client.send({"type": "turn"})
    expect_error("needs text and/or a recording")
    client.send_audio(pcm16_bytes(speech(MAX_AUDIO_S + 0.5)))
    expect_error(f"at most {MAX_AUDIO_S:g} s")
    client.send({"type": "turn"})
    expect_error("recording was refused")
    client.send_audio(b"\x1aE\xdf\xa3 definitely not opus" * 20, fmt="webm")
    client.send({"type": "turn"})
    start = client.receive()
    assert start["type"] == "start", start
    expect_error("could not decode the webm audio")
    assert "turn" in errors[-1]
    client.send({"type": "ping"})
    assert client.receive()["type"] == "pong"
    return errors


def test_bad_input_is_answered_and_nothing_leaks(server):
    other, client = Client(server), Client(server)

    def good_turns():  # the server keeps serving this client and the others (history reset: same shapes)
        for who, text in ((client, "hello"), (other, "and me?")):
            who.send({"type": "reset"})
            assert who.collect(until=("reset",))[-1]["type"] == "reset"
            assert who.turn(text=text)[-1]["type"] == "end"

    bad_round(client)
    good_turns()  # warm: the same work as every later round
    threads, memory = threading.active_count(), rss_mb()
    for round_index in range(20):
        bad_round(client)
        if round_index % 5 == 4:
            good_turns()
    assert threading.active_count() <= threads, [t.name for t in threading.enumerate()]
    grown = rss_mb() - memory
    assert grown < 32, f"resident memory grew by {grown:.0f} MB over 20 rounds"
    client.close()
    other.close()


def test_command_line_needs_the_three_parts():
    result = subprocess.run([sys.executable, "-m", "vita_jax.serve", "--tokenizer-dir", "tok"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "give --checkpoint, --tokenizer-dir and --decoder-dir (or --demo)" in \
        result.stderr.splitlines()[-1], result.stderr


def chromium_driver(question_wav, user_data_dir):
    """Debian's headless chromium + chromium-driver with a fake microphone playing `question_wav`."""
    import os
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        reason = ("Debian's chromium and chromium-driver are not installed (apt-get install -y chromium "
                  "chromium-driver; .ci/run installs them)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={user_data_dir}", "--use-fake-device-for-media-stream",
                 "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={question_wav}",
                 "--window-size=1100,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=DriverService(executable_path=driver), options=options)


def test_page_in_headless_chromium(server, tmp_path, record_property):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    question = tmp_path / "question.wav"  # the fake microphone loops it: 1.5 s of voice, 1.5 s of silence
    question.write_bytes(wav_file_bytes(np.concatenate([speech(1.5), np.zeros(24000, np.float32)]), 16000))
    browser = chromium_driver(question, tmp_path / "chromium-profile")
    try:
        browser.get(server + "/")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda b: b.find_element(By.ID, "status").text == "ready")
        talk = browser.find_element(By.ID, "talk")
        ActionChains(browser).click_and_hold(talk).pause(1.5).release().perform()  # push-to-talk
        done = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".turn.assistant[data-done='1']"))[0]
        user = browser.find_elements(By.CSS_SELECTOR, ".turn.user")[0]
        recorded = float(user.find_element(By.CLASS_NAME, "body").text.split()[1])
        assert recorded >= 1.0, f"the fake microphone recorded {recorded} s"
        assert user.find_element(By.CLASS_NAME, "meta").text.startswith("heard:")  # the server got the audio
        assert int(done.get_attribute("data-chunks")) > 0 and done.find_element(By.CLASS_NAME, "body").text
        latency = browser.find_element(By.ID, "latency").text
        assert "first audio" in latency and "ms" in latency and "tokens/s" in latency and "mode fast" in latency
        # a typed turn on the same conversation
        browser.find_element(By.ID, "text").send_keys("And a typed question?")
        browser.find_element(By.ID, "send").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".turn.assistant[data-done='1']")) == 2)
        # hands-free: the voice-activity detector starts a turn on the voice and ends it on the silence
        browser.find_element(By.ID, "handsfree").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".turn.assistant[data-done='1']")) >= 3)
        browser.find_element(By.ID, "handsfree").click()
        spoken = [float(u.text.split()[1]) for u in browser.find_elements(By.CSS_SELECTOR, ".turn.user .body")
                  if u.text.startswith("🎤") and len(u.text.split()) > 1 and u.text.split()[1] != "…"]
        assert len(spoken) >= 2 and 1.0 <= spoken[1] <= 3.5, f"hands-free turn lengths {spoken}"
        screenshot = tmp_path / "voice-chat-turn.png"
        assert browser.save_screenshot(str(screenshot))
        print(f"screenshot of the finished turns: {screenshot}")
        record_property("screenshot", str(screenshot))
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        browser.quit()
