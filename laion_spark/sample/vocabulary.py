"""Word lists that sample captions and URLs are drawn from (incl. non-ASCII words and emoji)."""

from __future__ import annotations

EMOJI = ("🌸", "🔥", "❤️", "✨", "😍", "🎄", "👗", "☕")

ENGLISH = (
    "vintage", "wedding", "table", "decoration", "ideas", "cake", "sunset", "beach", "mountain", "lake",
    "forest", "city", "skyline", "night", "portrait", "woman", "man", "dog", "cat", "puppy", "kitten",
    "flower", "garden", "rose", "kitchen", "living", "room", "bedroom", "interior", "design", "modern",
    "rustic", "red", "blue", "green", "black", "white", "gold", "dress", "shoes", "bag", "leather",
    "watercolor", "painting", "oil", "canvas", "illustration", "vector", "logo", "icon", "poster", "print",
    "art", "photo", "stock", "image", "background", "texture", "pattern", "abstract", "minimalist", "retro",
    "summer", "winter", "autumn", "spring", "christmas", "birthday", "party", "food", "recipe", "chocolate",
    "coffee", "for", "with", "and", "the", "of", "in", "on", "best", "new", "2019", "2020", "HD", "4K",
    "free", "cute", "beautiful", "large", "small",
)  # fmt: skip
#: Non-ASCII words and emoji that a minority of captions carry (besides laion2B-multi's own scripts).
DECORATIONS = ("café", "naïve", "crème brûlée", "über", "jalapeño", "façade", "résumé", "piñata") + EMOJI
#: Share of laion2B-en and laion2B-multi captions that end with one of :data:`DECORATIONS`.
DECORATED_SHARE = 0.08

#: laion2B-multi: LANGUAGE code -> (share of rows, word separator, words).
MULTI: dict[str, tuple[float, str, tuple[str, ...]]] = {
    "de": (0.18, " ", ("Hochzeit", "Tisch", "Dekoration", "Küche", "Garten", "schöne", "Blumen", "für", "mit",
                       "und", "der", "die", "das", "Größe", "Straße", "Bäume", "Frühling", "Weiß", "Grün", "Kleid")),
    "fr": (0.16, " ", ("mariage", "table", "décoration", "cuisine", "jardin", "belle", "fleurs", "pour", "avec",
                       "et", "le", "la", "été", "hiver", "château", "crème", "robe", "noël", "forêt", "élégant")),
    "es": (0.16, " ", ("boda", "mesa", "decoración", "cocina", "jardín", "hermosa", "flores", "para", "con", "y",
                       "el", "la", "niño", "año", "montaña", "playa", "vestido", "señora", "corazón", "España")),
    "ru": (0.12, " ", ("свадьба", "стол", "украшение", "кухня", "сад", "красивые", "цветы", "для", "с", "и",
                       "платье", "зима", "лето", "море", "город", "кошка", "собака", "фото", "новый", "русский")),
    "ja": (0.10, "", ("日本語", "結婚式", "テーブル", "装飾", "キッチン", "庭", "美しい", "花", "ドレス", "冬",
                      "夏", "海", "東京", "猫", "犬", "写真", "新作", "送料無料", "かわいい", "おしゃれ")),
    "it": (0.10, " ", ("matrimonio", "tavolo", "decorazione", "cucina", "giardino", "bella", "fiori", "per", "con",
                       "e", "il", "la", "città", "perché", "più", "vestito", "mare", "estate", "inverno", "caffè")),
    "pt": (0.10, " ", ("casamento", "mesa", "decoração", "cozinha", "jardim", "linda", "flores", "para", "com",
                       "e", "o", "a", "coração", "verão", "inverno", "praia", "vestido", "não", "família", "São Paulo")),
    "zh": (0.08, "", ("中文", "婚礼", "桌子", "装饰", "厨房", "花园", "美丽", "花", "连衣裙", "冬天", "夏天", "海",
                      "北京", "猫", "狗", "照片", "新款", "包邮", "可爱", "时尚")),
}  # fmt: skip

#: laion1B-nolang captions: a code-like prefix, a number, sometimes a unit or mark.
NOLANG_PREFIXES = ("IMG_", "DSC", "DCIM ", "P", "SKU ", "No. ", "#", "Art. ", "Ref ", "№ ", "ID:", "")
NOLANG_SUFFIXES = ("cm", "mm", "kg", "pcs", "x2", "HD", ".jpg", "★★★★☆", "✔", "→", "🔥", "✨")

#: URL shapes seen in LAION: (prefix, between id and slug, suffix).
URL_TEMPLATES = (
    ("https://i.pinimg.com/736x/", "/", ".jpg"),
    ("https://cdn.shopify.com/s/files/1/", "/products/", "_800x.jpg?v=1571438543"),
    ("http://1.bp.blogspot.com/-", "/s1600/", ".jpg"),
    ("https://images.squarespace-cdn.com/content/v1/", "/", ".png"),
    ("https://upload.wikimedia.org/wikipedia/commons/thumb/", "/640px-", ".jpg"),
    ("https://ae01.alicdn.com/kf/H", "/", ".jpg_640x640.jpg"),
    ("https://www.shop-beispiel.de/media/catalog/product/", "/", ".webp"),
    ("https://static.wixstatic.com/media/", "/", ".jpeg"),
    ("https://media.gettyimages.com/photos/", "/", "-picture-id.jpg"),
    ("https://img.ltwebstatic.com/images3_pi/", "/", ".jpg"),
)
URL_SLUG_WORDS = (
    "wedding", "table", "decor", "cake", "sunset", "beach", "dress", "shoes", "garden", "kitchen", "poster",
    "vintage", "modern", "red", "blue", "gold", "cat", "dog", "flower", "art", "print", "photo", "summer",
    "winter", "logo", "vector", "canvas", "ring", "lamp", "sofa",
)  # fmt: skip

LICENSES = (
    "https://creativecommons.org/licenses/by/4.0/",
    "https://creativecommons.org/licenses/by-sa/4.0/",
    "https://creativecommons.org/licenses/by-nc-sa/4.0/",
    "https://creativecommons.org/publicdomain/zero/1.0/",
)
