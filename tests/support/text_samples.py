"""Real-world text in its own languages, with the legacy encoding sites use for it."""

# ruff: noqa: E501, RUF001  (prose in its own scripts, one sample a line)

from __future__ import annotations

# language: (Python codec of the page, text), each sentence written in its language.
SAMPLES = {
    "fr": ("cp1252", "Le café de la gare était fermé. Noël approche, et les élèves préparent une fête à l'école. « Où est passé le garçon ? » demanda sa sœur."),
    "de": ("cp1252", "Die Straße war nass, und die Kinder spielten fröhlich im großen Garten. Über den Bäumen flogen Vögel; für Jürgen war es ein schöner Tag."),
    "es": ("cp1252", "El niño comió una manzana en el jardín. ¿Dónde está la estación? La canción habla de un corazón que espera; ¡qué alegría!"),
    "tr": ("cp1254", "Türkiye'nin başkenti Ankara'dır. İstanbul, Boğaziçi'nin iki yakasında kurulmuş büyük bir şehirdir. Çocuklar okulda öğretmenlerini dinliyor; ağaçların altında oturup kitap okuyorlar."),
    "pl": ("cp1250", "Zażółć gęślą jaźń. Wczoraj pojechaliśmy do Krakowa, gdzie zwiedziliśmy Wawel i Sukiennice. Pogoda była piękna, a ludzie bardzo życzliwi."),
    "cs": ("cp1250", "Příliš žluťoučký kůň úpěl ďábelské ódy. Praha je hlavní město České republiky a leží na řece Vltavě."),
    "ru": ("cp1251", "Москва - столица России, крупнейший по численности населения город страны. Вчера мы гуляли по Красной площади и смотрели на собор."),
    "ru-koi8": ("koi8-r", "Москва - столица России, крупнейший по численности населения город страны. Вчера мы гуляли по Красной площади и смотрели на собор."),
    "el": ("cp1253", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας. Χθες επισκεφθήκαμε την Ακρόπολη και περπατήσαμε στην Πλάκα μέχρι το βράδυ."),
    "he": ("cp1255", "ירושלים היא בירת ישראל והעיר הגדולה ביותר בה. אתמול טיילנו בעיר העתיקה וראינו את הכותל המערבי."),
    "ar": ("cp1256", "القاهرة هي عاصمة مصر وأكبر مدنها. زرنا أمس الأهرامات وتجولنا في السوق القديم حتى المساء."),
    "th": ("cp874", "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย เมื่อวานนี้เราไปเที่ยววัดพระแก้วและเดินเล่นที่ตลาดนัดจตุจักร"),
    "zh": ("gb18030", "北京是中华人民共和国的首都，也是全国的政治和文化中心。昨天我们参观了故宫和天安门广场，晚上吃了北京烤鸭。"),
    "zh-tw": ("big5hkscs", "臺北是中華民國的首都，也是臺灣的政治與文化中心。昨天我們參觀了故宮博物院，晚上在夜市吃了小吃。"),
    "ja": ("cp932", "東京は日本の首都であり、政治と経済の中心地です。昨日は浅草寺を訪れ、夜は新宿で美味しいラーメンを食べました。"),
    "ja-euc": ("euc_jp", "東京は日本の首都であり、政治と経済の中心地です。昨日は浅草寺を訪れ、夜は新宿で美味しいラーメンを食べました。"),
    "ko": ("cp949", "서울은 대한민국의 수도이며 정치와 경제의 중심지입니다. 어제 우리는 경복궁을 방문하고 저녁에는 명동에서 비빔밥을 먹었습니다."),
}  # fmt: skip


def html_page(language: str, text: str, head: str = "") -> str:
    """A small page as sites write them: the text in a title, a heading, paragraphs, a link."""
    return (
        f'<!DOCTYPE html><html lang="{language}"><head>{head}<title>{text[:20]}</title></head>'
        f'<body><h1>{text[:30]}</h1><p>{text}</p><p>{text}</p><a href="/next">{text[:10]}</a></body></html>'
    )
