"""The shopper's web app end to end in headless Debian Chromium (Playwright), against a real server thread on a
real index. Screenshots go to test-artifacts/ for people to look at."""
from __future__ import annotations

import base64
import re
import threading
from pathlib import Path

import pytest

from indexer_data import DATASETS, GROCERY, grocery_photo_queries

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ROOM_PHOTO = DATASETS / "ikea_interior" / "room_scenes" / "room012.jpg"  # a room: answered region by region
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "webapp"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def base_url(app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run scripts/install-browser.sh (make install does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def total(page) -> int:
    return int(page.locator("[data-total]").get_attribute("data-total"))


def grocery_photo() -> Path:
    return GROCERY / grocery_photo_queries()[0]["query_image_path"]


def test_type_a_query_see_suggestions_and_results(page):
    page.goto("/")
    shot(page, "01-home")
    box = page.locator(".hero [data-suggest-input]")
    box.press_sequentially("wat", delay=60)
    suggestions = page.locator(".hero [data-suggest-list] li")
    suggestions.first.wait_for()
    assert "wat" in suggestions.first.inner_text().lower()
    shot(page, "02-suggestions")
    box.fill("watch")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q=watch"))
    cards = page.locator("[data-result]")
    assert cards.count() >= 5
    assert "watch" in cards.first.inner_text().lower()
    assert page.locator("[data-result] img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    shot(page, "03-results-text")


def test_upload_a_photo_with_the_file_picker(page):
    page.goto("/")
    page.locator(".dropzone [data-photo-input]").first.set_input_files(str(grocery_photo()))
    page.wait_for_url(re.compile(r"/search\?img=[0-9a-f]{64}"))
    assert page.locator(".query-photo").is_visible()
    assert page.locator("[data-result]").count() >= 5
    shot(page, "04-results-photo")


def test_a_room_photo_shows_its_regions_and_which_product_each_matched(page):
    page.goto("/")
    page.locator(".dropzone [data-photo-input]").first.set_input_files(str(ROOM_PHOTO))
    page.wait_for_url(re.compile(r"/search\?img=[0-9a-f]{64}"))
    assert page.locator("[data-scene] img").is_visible()
    boxes = page.locator("[data-scene] rect")
    assert boxes.count() >= 2 and boxes.first.bounding_box()["width"] > 10
    tags = page.locator("[data-result] [data-matched-region]")
    assert tags.count() == page.locator("[data-result]").count() > 0
    assert re.fullmatch(r"in region \d+", tags.first.inner_text().strip())
    shot(page, "04b-results-room")


def test_drop_a_photo_on_the_drop_zone(page):
    page.goto("/")
    data = base64.b64encode(grocery_photo().read_bytes()).decode()
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "shelf.jpg", {type: "image/jpeg"}));
        const zone = document.querySelector("[data-dropzone]");
        zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", data)
    page.wait_for_url(re.compile(r"/search\?img="))
    assert page.locator("[data-result]").count() >= 5


def test_camera_input_is_offered(page):
    page.goto("/")
    assert page.locator('.dropzone input[capture="environment"]').count() == 1


def test_click_a_facet_and_the_list_narrows(page):
    page.goto("/search?q=shoes")
    before = total(page)
    facet = page.locator('[data-facet="gender"] a').first
    label = facet.get_attribute("data-facet-value")
    facet.click()
    page.wait_for_url(re.compile(r"gender="))
    after = total(page)
    assert 0 < after < before
    assert page.locator('[data-facet="gender"] a.on').first.get_attribute("data-facet-value") == label
    shot(page, "05-facet-narrowed")
    page.locator('[data-facet="gender"] a.on').first.click()  # clicking again removes it
    page.wait_for_load_state()
    assert total(page) == before


def test_more_like_this_and_product_page(page):
    page.goto("/search?q=handbag")
    first_title = page.locator("[data-result] .title").first.inner_text()
    page.locator("[data-more-like-this]").first.click()
    page.wait_for_url(re.compile(r"like="))
    assert page.locator("h1").inner_text().startswith("More like")
    assert page.locator("[data-result]").count() >= 3
    shot(page, "06-more-like-this")
    page.locator("[data-result] .title").first.click()
    page.wait_for_selector("[data-product]")
    assert page.locator("[data-product] h1").is_visible()
    assert page.locator("[data-product] [data-more-like-this]").is_visible()
    assert first_title
    shot(page, "07-product")


def test_empty_and_error_states_say_what_to_do(page, tmp_path):
    page.goto("/search?q=qzxv+blorptk+wmfz")
    empty = page.locator("[data-empty]")
    assert empty.is_visible() and "photo" in empty.inner_text()
    shot(page, "08-empty")
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_bytes(b"%PDF-1.4 not really a photo")
    page.goto("/")
    page.locator(".dropzone [data-photo-input]").first.set_input_files(str(not_a_photo))
    page.wait_for_selector("[data-error]")
    assert "JPEG" in page.locator("[data-error]").inner_text()
    shot(page, "09-error-bad-photo")


def test_ask_a_question_on_the_product_page(page):
    """The product page's "Ask about this product" box answers with its source; the photo's alt text is its
    caption (search.ask.caption), not the title."""
    page.goto("/product/10602")  # Myntra: a red printed T-shirt for men
    alt = page.locator(".product-img img").get_attribute("alt")
    assert "Tshirts" in alt and "Red" in alt
    box = page.locator("[data-ask-input]")
    box.fill("what colour is it?")
    box.press("Enter")
    answer = page.locator("[data-answer]")
    answer.wait_for()
    assert answer.get_attribute("data-source") == "facts" and "Red" in answer.inner_text()
    assert "from the catalog" in answer.inner_text()
    box = page.locator("[data-ask-input]")
    box.fill("what is it made of?")
    box.press("Enter")
    page.wait_for_url(re.compile(r"ask=what"))
    page.locator("[data-answer]").wait_for()
    assert page.locator("[data-answer]").get_attribute("data-source") in ("facts", "none")
    shot(page, "20-ask-product")
